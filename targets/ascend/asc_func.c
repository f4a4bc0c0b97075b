/*
** asc_func.c: the functional side of the Ascend model. Runs the kernel's tile ops in
** program order with the arithmetic of the units the lowering places them on:
**   Cube (qk, pv, mma): bf16 x bf16 products (exact in fp32) summed in fp32, int8 x int8
**     summed in int32; pv's block sum reaches O through a FixPipe fp32 atomic add
**     (O + sum, one rounding), as do the qk scores (fp32 to GM, then scaled on the Vector);
**   Vector (softmax, rescales, finalize, quantize, scale_acc, dequant): fp32, with bf16
**     rounding where the data crosses to the Cube (P~, dequantized weights), AMLA's 2^k
**     rescale as an int32 add on O's bits in GM, fused multiply-add where the CPU path
**     uses one (AscendC's FusedMulAdd/MulAddDst), expf for exp.
** The math of every op follows targets/cpu (lower.c, lower_attn.c) in these formats, so
** the same fp64 references and bounds (gen/check.c) apply.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asc_func.h"
#include "kf_quant.h"

typedef struct fs {
  kf_ctx *ctx;
  const kf_ir_kernel *ir;
  void **mem;
  int64_t *val;
} fs;

static int64_t ev(const fs *F, const kf_ix *x) {
  int64_t v = x->c;
  for (int i = 0; i < x->n; i++) v += x->coef[i] * F->val[x->var[i]];
  if (x->cap != INT64_MAX && v > x->cap) v = x->cap;
  return v;
}

static float bf16r(float x) { return kf_bf16_to_f32(kf_bf16_from_f32(x)); }

/* Element index of a tile's origin plus per-dim offsets (row-major). */
static int64_t tix(const fs *F, const kf_tile *t, const int64_t *extra) {
  const kf_ir_buf *b = &F->ir->bufs.data[t->buf];
  int64_t e = 0, stride = 1;
  for (int d = b->rank - 1; d >= 0; d--) {
    e += (ev(F, &t->off[d]) + (extra ? extra[d] : 0)) * stride;
    stride *= b->dims[d];
  }
  return e;
}

/* A tile as a matrix: rows x cols over its last two dims (leading extents 1). */
typedef struct mat {
  int buf;
  int64_t base, stride, rows, cols, row_dim, row0;
  kf_scalar dt;
} mat;

static mat view(const fs *F, const kf_tile *t) {
  const kf_ir_buf *b = &F->ir->bufs.data[t->buf];
  mat m;
  m.buf = t->buf;
  m.base = tix(F, t, NULL);
  m.dt = b->dtype;
  if (b->rank == 1) {
    m.stride = 1;
    m.rows = t->ext[0];
    m.cols = 1;
    m.row_dim = b->dims[0];
    m.row0 = ev(F, &t->off[0]);
  } else {
    m.stride = b->dims[b->rank - 1];
    m.rows = t->ext[b->rank - 2];
    m.cols = t->ext[b->rank - 1];
    m.row_dim = b->dims[b->rank - 2];
    m.row0 = ev(F, &t->off[b->rank - 2]);
  }
  return m;
}

static float *fp(const fs *F, const mat *m, int64_t r, int64_t c) { return (float *)F->mem[m->buf] + m->base + r * m->stride + c; }
static int32_t *ip(const fs *F, const mat *m, int64_t r, int64_t c) { return (int32_t *)F->mem[m->buf] + m->base + r * m->stride + c; }
static float bfv(const fs *F, const mat *m, int64_t r, int64_t c) {
  return kf_bf16_to_f32(((const uint16_t *)F->mem[m->buf])[m->base + r * m->stride + c]);
}

/* Stored offset-binary code of weight (n, k) in the packed layouts of runtime/quant; MXFP4
** nibbles are decoded as the AIVs do, to the 8-bit code 128 + 2 * value. */
static int wcode(const kf_ir_buf *b, const uint8_t *pk, int64_t n, int64_t k) {
  int64_t Kp = (b->dims[b->rank - 1] + 7) / 8 * 8, nb = n / 16, nn = n % 16;
  int c;
  if (b->wlayout == 0) { /* N16K4 */
    if (b->wbits == 8) return pk[((nb * (Kp / 4) + k / 4) * 16 + nn) * 4 + k % 4];
    int64_t kb = k / 4;
    uint8_t v = pk[((nb * (Kp / 8) + kb / 2) * 16 + nn) * 4 + k % 4];
    c = kb % 2 ? v >> 4 : v & 15;
  } else {
    if (b->wbits == 8) return pk[(nb * Kp + k) * 16 + nn];
    uint8_t v = pk[(nb * (Kp / 2) + k / 2) * 16 + nn];
    c = k % 2 ? v >> 4 : v & 15;
  }
  if (b->wmx) return 128 + kf_fp4_e2m1_times2((uint8_t)c);
  return c;
}

/* The doubled E2M1 code of d (|d| <= 12 after scaling): |d| rounded to {0,1,2,3,4,6,8,12},
** ties to even codes, sign kept (targets/cpu e2m1x2). */
static float e2m1x2(float d) {
  float a = fabsf(d);
  float mag = a < 4 ? rintf(a) : a < 8 ? rintf(a * 0.5f) * 2 : rintf(a * 0.25f) * 4;
  mag = fminf(mag, 12.0f);
  return d < 0 ? -mag : mag;
}

/* MXFP4 scale of a block with max |x| = amax: s = X/2 and inv = 2/X for the smallest power of
** two X with 6 X >= amax (non-clipping), biased exponent of X clamped to [2, 254]. */
static void mx_scale(float amax, float *s, float *inv) {
  if (!(amax > 0)) {
    *s = *inv = 0;
    return;
  }
  float q = amax / 6.0f;
  uint32_t bits;
  memcpy(&bits, &q, 4);
  int32_t eb = (int32_t)(bits >> 23) + ((bits & 0x7fffff) != 0);
  eb = eb < 2 ? 2 : eb > 253 ? 253 : eb;
  uint32_t xb = (uint32_t)eb << 23;
  float X;
  memcpy(&X, &xb, 4);
  if (X * 6.0f < amax) eb++;
  uint32_t sb = (uint32_t)(eb - 1) << 23, ib = (uint32_t)(255 - eb) << 23;
  memcpy(s, &sb, 4);
  memcpy(inv, &ib, 4);
}

static void op_fill(fs *F, const kf_ir_node *n) {
  const kf_tile *t = &n->t[0];
  const kf_ir_buf *b = &F->ir->bufs.data[t->buf];
  int64_t idx[KF_IR_MAX_RANK] = {0}, total = 1;
  for (int d = 0; d < b->rank; d++) total *= t->ext[d];
  for (int64_t e = 0; e < total; e++) {
    int64_t rem = e, ok = 1;
    for (int d = b->rank - 1; d >= 0; d--) {
      idx[d] = rem % t->ext[d];
      rem /= t->ext[d];
      if (ev(F, &t->off[d]) + idx[d] >= b->dims[d]) ok = 0;
    }
    if (!ok) continue;
    int64_t i = tix(F, t, idx);
    if (b->dtype == KF_F32) ((float *)F->mem[t->buf])[i] = (float)n->f;
    else ((int32_t *)F->mem[t->buf])[i] = (int32_t)n->f;
  }
}

static void op_zero(fs *F, const kf_ir_node *n) {
  const kf_ir_buf *b = &F->ir->bufs.data[n->t[0].buf];
  int64_t e = 1;
  for (int d = 0; d < b->rank; d++) e *= b->dims[d];
  memset(F->mem[n->t[0].buf], 0, (size_t)e * (size_t)(kf_scalar_bits(b->dtype) / 8));
}

/* Cube: S = (q . k in fp32) then * scale on the Vector */
static void op_qk(fs *F, const kf_ir_node *n) {
  mat s = view(F, &n->t[0]), q = view(F, &n->t[1]), k = view(F, &n->t[2]);
  int64_t len = ev(F, &n->len), D = q.cols;
  float scale = (float)n->f;
  for (int64_t h = 0; h < q.rows; h++)
    for (int64_t j = 0; j < len && j < s.cols; j++) {
      int64_t kr = k.row0 + j < k.row_dim ? j : k.row_dim - 1 - k.row0;
      float acc = 0;
      for (int64_t d = 0; d < D; d++) acc += bfv(F, &q, h, d) * bfv(F, &k, kr, d);
      *fp(F, &s, h, j) = acc * scale;
    }
}

static void op_softmax(fs *F, const kf_ir_node *n) {
  int amla = (int)n->i[0], pbf = (int)n->i[1];
  mat s = view(F, &n->t[0]), m = view(F, &n->t[1]), l = view(F, &n->t[2]), al = view(F, &n->t[3]), nn = al, add = al;
  if (amla) {
    nn = view(F, &n->t[4]);
    add = view(F, &n->t[5]);
  }
  int64_t len = ev(F, &n->len);
  for (int64_t h = 0; h < s.rows; h++) {
    float mb = -INFINITY;
    for (int64_t j = 0; j < len; j++) mb = fmaxf(mb, *fp(F, &s, h, j));
    float mold = *fp(F, &m, h, 0), mnew = fmaxf(mold, mb);
    float alpha = expf(mold - mnew), rhat = 1;
    if (amla) {
      float ni = rintf(mnew * -1.4426950408889634f);
      float r = expf(fmaf(ni, 0.6931471805599453f, mnew));
      rhat = bf16r(r);
      float c = r / rhat, cprev = *fp(F, &al, h, 0), nprev = *fp(F, &nn, h, 0);
      float eps = 1.5f * (cprev / c - 1.0f);
      float N = fmaxf(ni - nprev, -30.0f) + eps;
      int32_t a = (int32_t)rintf(N * 8388608.0f);
      *ip(F, &add, h, 0) = mold < -3.0e38f ? 0 : a;
      *fp(F, &nn, h, 0) = ni;
      *fp(F, &al, h, 0) = c;
    }
    float sum = 0;
    for (int64_t j = 0; j < len; j++) {
      float e = expf(*fp(F, &s, h, j) - mnew);
      sum += e;
      float p = amla ? e * rhat : e;
      *fp(F, &s, h, j) = pbf || amla ? bf16r(p) : p;
    }
    *fp(F, &l, h, 0) = fmaf(*fp(F, &l, h, 0), alpha, sum);
    *fp(F, &m, h, 0) = mnew;
    if (!amla) *fp(F, &al, h, 0) = alpha;
  }
}

static void op_rescale(fs *F, const kf_ir_node *n, int exp2) {
  mat o = view(F, &n->t[0]), a = view(F, &n->t[1]);
  for (int64_t h = 0; h < o.rows; h++)
    for (int64_t c = 0; c < o.cols; c++) {
      float *x = fp(F, &o, h, c);
      if (exp2) {
        uint32_t bits;
        memcpy(&bits, x, 4);
        bits += (uint32_t)*ip(F, &a, h, 0);
        memcpy(x, &bits, 4);
      } else {
        *x *= *fp(F, &a, h, 0);
      }
    }
}

/* Cube: the block's P~ V in fp32 (L0C), then a FixPipe fp32 atomic add into O */
static void op_pv(fs *F, const kf_ir_node *n) {
  mat o = view(F, &n->t[0]), p = view(F, &n->t[1]), v = view(F, &n->t[2]);
  int64_t len = ev(F, &n->len);
  for (int64_t h = 0; h < o.rows; h++)
    for (int64_t c = 0; c < o.cols; c++) {
      float acc = 0;
      for (int64_t j = 0; j < len; j++) acc += *fp(F, &p, h, j) * bfv(F, &v, j, c);
      *fp(F, &o, h, c) += acc;
    }
}

static void op_finalize(fs *F, const kf_ir_node *n) {
  int amla = n->n_tiles >= 5, guard = (int)n->i[0];
  mat out = view(F, &n->t[0]), o = view(F, &n->t[1]), l = view(F, &n->t[2]), m = l, nn = l;
  if (amla) {
    m = view(F, &n->t[3]);
    nn = view(F, &n->t[4]);
  }
  for (int64_t h = 0; h < o.rows; h++) {
    float den = *fp(F, &l, h, 0);
    if (amla) den *= bf16r(expf(fmaf(*fp(F, &nn, h, 0), 0.6931471805599453f, *fp(F, &m, h, 0))));
    float inv = 1.0f / den;
    for (int64_t c = 0; c < o.cols; c++) {
      float x = *fp(F, &o, h, c);
      if (guard && !(fabsf(x) <= 1e10f)) x = 0;
      *fp(F, &out, h, c) = x * inv;
    }
  }
}

static void op_quantize(fs *F, const kf_ir_node *n) {
  const kf_tile *src = &n->t[0], *codes = &n->t[1], *scales = &n->t[2], *sums = &n->t[3];
  const kf_ir_buf *bs = &F->ir->bufs.data[src->buf], *bc = &F->ir->bufs.data[codes->buf];
  const kf_ir_buf *bsc = &F->ir->bufs.data[scales->buf], *bsu = &F->ir->bufs.data[sums->buf];
  int P = (int)n->i[0], mx = (int)n->i[3];
  int64_t K = bs->dims[1], M = bs->dims[0], Kp = bc->dims[2], rows = src->ext[0];
  int64_t ag = mx ? 32 : n->i[1] > 0 ? n->i[1] : K, sg = n->i[2] > 0 ? n->i[2] : Kp;
  int64_t n_ag = (K + ag - 1) / ag, n_sg = (Kp + sg - 1) / sg, pstride = bc->dims[1] * Kp;
  const void *x = F->mem[src->buf];
  int xf32 = bs->dtype == KF_F32;
  int8_t *cd = F->mem[codes->buf];
  float *sc = F->mem[scales->buf];
  int32_t *su = F->mem[sums->buf];
  for (int64_t r = 0; r < rows; r++) {
    int64_t mrow = ev(F, &src->off[0]) + r;
    if (mrow > M - 1) mrow = M - 1;
    int64_t xrow = mrow * K + ev(F, &src->off[1]);
#define XV(k) (xf32 ? ((const float *)x)[xrow + (k)] : kf_bf16_to_f32(((const uint16_t *)x)[xrow + (k)]))
    int64_t crow = tix(F, codes, NULL) + r * Kp;
    for (int64_t g = 0; g < n_ag; g++) {
      int64_t k0 = g * ag, k1 = k0 + ag < K ? k0 + ag : K;
      if (mx) { /* pass p: residual of the passes before it, its own non-clipping block scale */
        float res[32];
        for (int64_t k = k0; k < k1; k++) res[k - k0] = XV(k);
        for (int p = 0; p < P; p++) {
          float amax = 0, sp, ip;
          for (int64_t k = k0; k < k1; k++) amax = fmaxf(amax, fabsf(res[k - k0]));
          mx_scale(amax, &sp, &ip);
          int64_t extra[4] = {p, 0, g, 0};
          sc[tix(F, scales, extra) + r * bsc->dims[2]] = sp;
          for (int64_t k = k0; k < k1; k++) {
            float q = e2m1x2(res[k - k0] * ip);
            if (p + 1 < P) res[k - k0] = fmaf(q, -sp, res[k - k0]);
            cd[crow + p * pstride + k] = (int8_t)q;
          }
        }
        continue;
      }
      float amax = 0;
      for (int64_t k = k0; k < k1; k++) amax = fmaxf(amax, fabsf(XV(k)));
      float inv[4], s[4];
      inv[0] = amax > 0 ? 127.0f / amax : 0.0f;
      s[0] = amax / 127.0f;
      for (int p = 1; p < P; p++) {
        s[p] = s[p - 1] / 254.0f;
        inv[p] = inv[p - 1] * 254.0f;
      }
      for (int p = 0; p < P; p++) {
        int64_t extra[4] = {p, 0, g, 0};
        sc[tix(F, scales, extra) + r * bsc->dims[2]] = s[p];
      }
      for (int64_t k = k0; k < k1; k++) {
        float res = XV(k);
        for (int p = 0; p < P; p++) {
          float q = fmaxf(fminf(rintf(res * inv[p]), 127.0f), -127.0f);
          if (p + 1 < P) res = fmaf(q, -s[p], res);
          cd[crow + p * pstride + k] = (int8_t)q;
        }
      }
    }
#undef XV
    for (int p = 0; p < P; p++)
      for (int64_t k = K; k < Kp; k++) cd[crow + p * pstride + k] = 0;
    for (int p = 0; p < P; p++)
      for (int64_t g = 0; g < n_sg; g++) {
        int32_t sum = 0;
        for (int64_t k = g * sg; k < (g + 1) * sg && k < Kp; k++) sum += cd[crow + p * pstride + k];
        int64_t extra[4] = {p, 0, g, 0};
        su[tix(F, sums, extra) + r * bsu->dims[2]] = sum;
      }
  }
}

static void op_mma(fs *F, const kf_ir_node *n) {
  const kf_tile *acc = &n->t[0], *a = &n->t[1], *b = &n->t[2];
  const kf_ir_buf *ba = &F->ir->bufs.data[a->buf], *bw = &F->ir->bufs.data[b->buf], *bacc = &F->ir->bufs.data[acc->buf];
  int rw = bw->rank; /* 3: a batch of packed matrices (one per KV head), one used per mma */
  int64_t K = bw->dims[rw - 1], Kp = (K + 7) / 8 * 8, nr = b->ext[rw - 2], n1 = ev(F, &b->off[rw - 2]),
          k0 = ev(F, &b->off[rw - 1]);
  int64_t Np = (bw->dims[rw - 2] + 15) / 16 * 16;
  const uint8_t *pk = (const uint8_t *)F->mem[b->buf] + (rw == 3 ? ev(F, &b->off[0]) * Np * Kp * bw->wbits / 8 : 0);
  if (nr > Np - n1) nr = Np - n1; /* columns past the packed rows are never stored */
  if (ba->dtype == KF_I8) { /* Cube int8: exact int32 sums of u * q (the offset is removed by scale_acc) */
    int P = (int)a->ext[0];
    int64_t mr = a->ext[1], span = a->ext[2], k1 = k0 + span < Kp ? k0 + span : Kp;
    int32_t *A = F->mem[acc->buf];
    const int8_t *q = F->mem[a->buf];
    for (int p = 0; p < P; p++)
      for (int64_t m = 0; m < mr; m++) {
        int64_t extra[4] = {p, m, 0, 0};
        const int8_t *qr = q + tix(F, a, extra);
        for (int64_t j = 0; j < nr; j++) {
          int32_t s = 0;
          for (int64_t k = k0; k < k1; k++) s += wcode(bw, pk, n1 + j, k) * qr[k - k0];
          A[(p * mr + m) * bacc->dims[1] + j] += s;
        }
      }
    return;
  }
  /* dequant on the Vector: w = bf16((u - off) * scale); Cube: bf16 x bf16 summed in fp32 */
  const kf_tile *sc = &n->t[3];
  const float *scale = (const float *)F->mem[sc->buf] + tix(F, sc, NULL);
  int64_t M = ba->dims[0], mr = a->ext[0], span = a->ext[1], m1 = ev(F, &a->off[0]);
  int64_t k1 = k0 + span < K ? k0 + span : K;
  int off = bw->wbits == 8 ? 128 : 8;
  float *A = F->mem[acc->buf];
  const uint16_t *x = F->mem[a->buf];
  float *wf = kf_xmalloc((size_t)(k1 > k0 ? k1 - k0 : 1) * sizeof(float));
  for (int64_t j = 0; j < nr; j++) {
    for (int64_t k = k0; k < k1; k++) wf[k - k0] = bf16r((float)(wcode(bw, pk, n1 + j, k) - off) * scale[j]);
    for (int64_t m = 0; m < mr; m++) {
      int64_t row = m1 + m < M ? m1 + m : M - 1;
      float s = A[m * bacc->dims[1] + j];
      for (int64_t k = k0; k < k1; k++) s += wf[k - k0] * kf_bf16_to_f32(x[row * K + k]);
      A[m * bacc->dims[1] + j] = s;
    }
  }
  free(wf);
}

static void op_scale_acc(fs *F, const kf_ir_node *n) {
  const kf_tile *accf = &n->t[0], *acci = &n->t[1], *xs = &n->t[2], *xsum = &n->t[3], *wsc = &n->t[4];
  const kf_ir_buf *bf = &F->ir->bufs.data[accf->buf];
  int P = (int)n->i[0];
  int64_t mr = bf->dims[0], nr = bf->dims[1], off = n->i[1];
  float *Af = F->mem[accf->buf];
  const int32_t *Ai = F->mem[acci->buf];
  const float *w = (const float *)F->mem[wsc->buf] + tix(F, wsc, NULL);
  const kf_ir_buf *bws = &F->ir->bufs.data[wsc->buf];
  int64_t ncols = bws->dims[bws->rank - 1] - ev(F, &wsc->off[bws->rank - 1]); /* scales exist for Npad columns */
  if (ncols < nr) nr = ncols;
  for (int p = 0; p < P; p++)
    for (int64_t m = 0; m < mr; m++) {
      int64_t extra[4] = {p, m, 0, 0};
      float s = ((const float *)F->mem[xs->buf])[tix(F, xs, extra)];
      int32_t corr = ((const int32_t *)F->mem[xsum->buf])[tix(F, xsum, extra)] * (int32_t)off;
      for (int64_t j = 0; j < nr; j++) {
        float fl = (float)(Ai[(p * mr + m) * bf->dims[1] + j] - corr);
        Af[m * bf->dims[1] + j] = fmaf(fl, w[j] * s, Af[m * bf->dims[1] + j]);
      }
    }
}

/* Vector: dst = src * (scales * f) per column; scales past their buffer read as zero. */
static void op_scale_cols(fs *F, const kf_ir_node *n) {
  mat d = view(F, &n->t[0]), x = view(F, &n->t[1]);
  const kf_tile *st = &n->t[2];
  const kf_ir_buf *sb = &F->ir->bufs.data[st->buf];
  const float *sc = (const float *)F->mem[st->buf] + tix(F, st, NULL);
  int64_t left = sb->dims[sb->rank - 1] - ev(F, &st->off[sb->rank - 1]);
  for (int64_t c = 0; c < d.cols; c++) {
    float f = (c < left ? sc[c] : 0.0f) * (float)n->f;
    for (int64_t r = 0; r < d.rows; r++)
      *fp(F, &d, r, c) = (x.dt == KF_F32 ? *fp(F, &x, r, c) : bfv(F, &x, r, c)) * f;
  }
}

static void op_move(fs *F, const kf_ir_node *n, int mode) {
  const kf_tile *mem = mode == 0 ? &n->t[1] : &n->t[0], *reg = mode == 0 ? &n->t[0] : &n->t[1];
  const kf_ir_buf *bm = &F->ir->bufs.data[mem->buf], *br = &F->ir->bufs.data[reg->buf];
  int64_t R = bm->dims[0], C = bm->dims[1], r0 = ev(F, &mem->off[0]), c0 = ev(F, &mem->off[1]);
  int is_f = br->dtype == KF_F32;
  for (int64_t r = 0; r < br->dims[0]; r++)
    for (int64_t c = 0; c < br->dims[1]; c++) {
      int64_t ri = r * br->dims[1] + c, mi = (r0 + r) * C + c0 + c;
      int in = r0 + r < R && c0 + c < C;
      if (is_f) {
        float *rg = (float *)F->mem[reg->buf] + ri, *mm = (float *)F->mem[mem->buf];
        if (mode == 0) *rg = in ? mm[mi] : 0;
        else if (in) mm[mi] = mode == 2 ? mm[mi] + *rg : *rg;
      } else {
        int32_t *rg = (int32_t *)F->mem[reg->buf] + ri, *mm = (int32_t *)F->mem[mem->buf];
        if (mode == 0) *rg = in ? mm[mi] : 0;
        else if (in) mm[mi] = mode == 2 ? mm[mi] + *rg : *rg;
      }
    }
}

static int run_block(fs *F, const kf_ir_block *blk);

static int run_node(fs *F, const kf_ir_node *n) {
  switch (n->op) {
  case KF_OP_LOOP: {
    int64_t lo = ev(F, &n->lo), hi = ev(F, &n->hi);
    for (int64_t v = lo; v < hi; v += n->step) {
      F->val[n->var] = v;
      int rc = run_block(F, &n->body);
      if (rc) return rc;
    }
    return KF_OK;
  }
  case KF_OP_ZERO: op_zero(F, n); return KF_OK;
  case KF_OP_FILL: op_fill(F, n); return KF_OK;
  case KF_OP_QK: op_qk(F, n); return KF_OK;
  case KF_OP_SOFTMAX: op_softmax(F, n); return KF_OK;
  case KF_OP_RESCALE: op_rescale(F, n, 0); return KF_OK;
  case KF_OP_RESCALE_EXP2: op_rescale(F, n, 1); return KF_OK;
  case KF_OP_PV: op_pv(F, n); return KF_OK;
  case KF_OP_FINALIZE: op_finalize(F, n); return KF_OK;
  case KF_OP_QUANTIZE: op_quantize(F, n); return KF_OK;
  case KF_OP_MMA: op_mma(F, n); return KF_OK;
  case KF_OP_SCALE_ACC: op_scale_acc(F, n); return KF_OK;
  case KF_OP_SCALE_COLS: op_scale_cols(F, n); return KF_OK;
  case KF_OP_LOAD: op_move(F, n, 0); return KF_OK;
  case KF_OP_STORE: op_move(F, n, 1); return KF_OK;
  case KF_OP_ACCUM_STORE: op_move(F, n, 2); return KF_OK;
  default: break;
  }
  return kf_err(F->ctx, KF_EINVAL, "%s:%d: op %s has no functional model on the Ascend target", n->loc.file ? n->loc.file : "?",
                n->loc.line, kf_ir_opname(n->op));
}

static int run_block(fs *F, const kf_ir_block *blk) {
  for (size_t i = 0; i < blk->len; i++) {
    int rc = run_node(F, blk->data[i]);
    if (rc) return rc;
  }
  return KF_OK;
}

int kf_asc_functional(kf_ctx *ctx, const kf_ir_kernel *ir, void *const *args) {
  fs F;
  memset(&F, 0, sizeof F);
  F.ctx = ctx;
  F.ir = ir;
  F.mem = kf_xcalloc(ir->bufs.len + 1, sizeof(void *));
  F.val = kf_xcalloc(ir->vars.len + 1, sizeof(int64_t));
  uint8_t *owned = kf_xcalloc(ir->bufs.len + 1, 1);
  int a = 0;
  for (size_t i = 0; i < ir->bufs.len; i++) {
    const kf_ir_buf *b = &ir->bufs.data[i];
    if (b->level == KF_LVL_ARG_IN || b->level == KF_LVL_ARG_OUT) {
      F.mem[i] = args[a++];
      continue;
    }
    int64_t e = 1;
    for (int d = 0; d < b->rank; d++) e *= b->dims[d];
    F.mem[i] = kf_xcalloc((size_t)e, (size_t)(kf_scalar_bits(b->dtype) / 8));
    owned[i] = 1;
  }
  int rc = run_block(&F, &ir->body);
  for (size_t i = 0; i < ir->bufs.len; i++)
    if (owned[i]) free(F.mem[i]);
  free(owned);
  free(F.mem);
  free(F.val);
  return rc;
}
