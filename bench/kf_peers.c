/*
** kf_peers.c: oneDNN bf16 / u8s8 matmul and OpenBLAS dequant+sgemm peers (see kf_peers.h).
*/
#include "kf_peers.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "bench.h"
#include "kf_ref.h"

struct kf_peer {
  kf_peer_kind kind;
  int64_t M, N, K;
  int threads;
  kf_bench_rot weights; /* oneDNN: packed weight copies; BLAS: int8 code copies */
  float *y;             /* M × N */
  int64_t weight_bytes;
  char impl[128];

  /* oneDNN */
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t prim;
  dnnl_memory_t src_mem, dst_mem;
  dnnl_memory_t *w_mems; /* one per weight copy */
  void *src_buf;         /* bf16 bits or u8 codes, M × K */
  float *out_scales;     /* N: s_x · s_w[n] (u8s8) */

  /* OpenBLAS */
  float *w_scale;           /* N */
  float *x_f32;             /* M × K */
  float *w_f32;             /* N × K dequantized weights (scratch written every call) */
};

static const char *const peer_names[KF_PEER_N] = {"dnnl_bf16", "dnnl_u8s8", "blas_deq"};

const char *kf_peer_name(kf_peer_kind kind) {
  return (unsigned)kind < KF_PEER_N ? peer_names[kind] : "?";
}

static void set_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...) {
  if (!err || !len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
}

float kf_peer_bf16_weight(int8_t code, float scale) {
  return kf_ref_bf16_round((float)code * scale);
}

float kf_peer_quantize_u8(const float *x, int64_t n, uint8_t *u) {
  float amax = 0;
  for (int64_t i = 0; i < n; i++)
    if (fabsf(x[i]) > amax) amax = fabsf(x[i]);
  float s_x = amax > 0 ? amax / 127.0f : 1.0f;
  for (int64_t i = 0; i < n; i++) {
    long q = lrintf(x[i] / s_x);
    if (q > 127) q = 127;
    if (q < -127) q = -127;
    u[i] = (uint8_t)(q + 128);
  }
  return s_x;
}

static uint16_t bf16_bits(float bf16_value) {
  uint32_t bits;
  memcpy(&bits, &bf16_value, sizeof bits);
  return (uint16_t)(bits >> 16);
}

/* ------------------------------------------------------------------------------------------- */
/* oneDNN                                                                                      */

#define DNNL_TRY(call)                                                                       \
  do {                                                                                       \
    dnnl_status_t st_ = (call);                                                              \
    if (st_ != dnnl_success) {                                                               \
      set_err(err, err_len, "%s: oneDNN %s failed: %s", peer_names[p->kind], #call,          \
              dnnl_status2str(st_));                                                         \
      goto fail;                                                                             \
    }                                                                                        \
  } while (0)

static int dnnl_prepare(kf_peer *p, const int8_t *wq, const float *w_scale, const float *x,
                        int cold, char *err, size_t err_len) {
  int u8s8 = p->kind == KF_PEER_DNNL_U8S8;
  int64_t M = p->M, N = p->N, K = p->K;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_memory_t user_w = NULL, packed_w = NULL;
  dnnl_primitive_desc_t reorder_pd = NULL;
  dnnl_primitive_t reorder = NULL;
  void *user_w_buf = NULL;
  int rc = -1;

  omp_set_num_threads(p->threads);
  DNNL_TRY(dnnl_engine_create(&p->engine, dnnl_cpu, 0));
  DNNL_TRY(dnnl_stream_create(&p->stream, p->engine, dnnl_stream_default_flags));

  dnnl_dims_t src_dims = {M, K}, w_dims = {K, N}, dst_dims = {M, N};
  dnnl_memory_desc_t src_md, w_any_md, w_user_md, dst_md;
  dnnl_data_type_t src_dt = u8s8 ? dnnl_u8 : dnnl_bf16, w_dt = u8s8 ? dnnl_s8 : dnnl_bf16;
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, src_dt, dnnl_ab));
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any_md, 2, w_dims, w_dt, dnnl_format_tag_any));
  /* W is N×K row-major, i.e. the K×N matrix B with strides (1, K): tag "ba". */
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_user_md, 2, w_dims, w_dt, dnnl_ba));
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab));

  DNNL_TRY(dnnl_primitive_attr_create(&attr));
  if (u8s8) {
    /* Activations quantized now (untimed), so the output scales s_x·s_w[n] are known when the
    ** primitive is created: oneDNN 2.6 picks its fast brgemm kernel only for such static scales
    ** (runtime scales, DNNL_RUNTIME_F32_VAL, fall back to the slower gemm:jit). */
    p->src_buf = malloc((size_t)(M * K));
    p->out_scales = malloc((size_t)N * sizeof *p->out_scales);
    if (!p->src_buf || !p->out_scales) {
      set_err(err, err_len, "%s: out of memory for activations", peer_names[p->kind]);
      goto fail;
    }
    float s_x = kf_peer_quantize_u8(x, M * K, p->src_buf);
    for (int64_t n = 0; n < N; n++) p->out_scales[n] = s_x * w_scale[n];
    const int32_t zero_point = 128;
    DNNL_TRY(dnnl_primitive_attr_set_output_scales(attr, N, 1 << 1, p->out_scales));
    DNNL_TRY(dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &zero_point));
  }
  dnnl_matmul_desc_t mm;
  DNNL_TRY(dnnl_matmul_desc_init(&mm, &src_md, &w_any_md, NULL, &dst_md));
  DNNL_TRY(dnnl_primitive_desc_create(&p->pd, &mm, attr, p->engine, NULL));
  const char *impl = NULL;
  DNNL_TRY(dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &impl));
  snprintf(p->impl, sizeof p->impl, "%s", impl ? impl : "?");
  DNNL_TRY(dnnl_primitive_create(&p->prim, p->pd));

  /* Weights: user layout -> the implementation's layout, once (load time). */
  size_t user_bytes = (size_t)(N * K) * (u8s8 ? 1 : 2);
  user_w_buf = malloc(user_bytes);
  if (!user_w_buf) {
    set_err(err, err_len, "%s: out of memory for %zu bytes of weights", peer_names[p->kind],
            user_bytes);
    goto fail;
  }
  if (u8s8) {
    memcpy(user_w_buf, wq, user_bytes);
  } else {
    uint16_t *wb = user_w_buf;
    for (int64_t n = 0; n < N; n++)
      for (int64_t k = 0; k < K; k++)
        wb[n * K + k] = bf16_bits(kf_peer_bf16_weight(wq[n * K + k], w_scale[n]));
  }
  const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(p->pd, dnnl_query_weights_md, 0);
  DNNL_TRY(dnnl_memory_create(&user_w, &w_user_md, p->engine, user_w_buf));
  DNNL_TRY(dnnl_memory_create(&packed_w, w_md, p->engine, DNNL_MEMORY_ALLOCATE));
  DNNL_TRY(dnnl_reorder_primitive_desc_create(&reorder_pd, &w_user_md, p->engine, w_md,
                                              p->engine, NULL));
  DNNL_TRY(dnnl_primitive_create(&reorder, reorder_pd));
  dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, packed_w}};
  DNNL_TRY(dnnl_primitive_execute(reorder, p->stream, 2, rargs));
  DNNL_TRY(dnnl_stream_wait(p->stream));

  size_t packed_bytes = dnnl_memory_desc_get_size(w_md);
  void *packed_buf = NULL;
  DNNL_TRY(dnnl_memory_get_data_handle(packed_w, &packed_buf));
  if (kf_bench_rot_init(&p->weights, packed_buf, packed_bytes, cold, 0, err, err_len)) goto fail;
  p->weight_bytes = (int64_t)packed_bytes;
  p->w_mems = calloc((size_t)p->weights.n_copies, sizeof *p->w_mems);
  if (!p->w_mems) {
    set_err(err, err_len, "%s: out of memory", peer_names[p->kind]);
    goto fail;
  }
  for (int i = 0; i < p->weights.n_copies; i++)
    DNNL_TRY(dnnl_memory_create(&p->w_mems[i], w_md, p->engine, p->weights.copies[i]));

  /* Activations (bf16: converted here, untimed; u8: quantized above) and output. */
  p->y = calloc((size_t)(M * N), sizeof *p->y);
  if (!u8s8) p->src_buf = malloc((size_t)(M * K) * 2);
  if (!p->src_buf || !p->y) {
    set_err(err, err_len, "%s: out of memory for activations", peer_names[p->kind]);
    goto fail;
  }
  if (!u8s8) {
    uint16_t *xb = p->src_buf;
    for (int64_t i = 0; i < M * K; i++) xb[i] = bf16_bits(kf_ref_bf16_round(x[i]));
  }
  DNNL_TRY(dnnl_memory_create(&p->src_mem, &src_md, p->engine, p->src_buf));
  DNNL_TRY(dnnl_memory_create(&p->dst_mem, &dst_md, p->engine, p->y));
  rc = 0;
fail:
  if (reorder) dnnl_primitive_destroy(reorder);
  if (reorder_pd) dnnl_primitive_desc_destroy(reorder_pd);
  if (packed_w) dnnl_memory_destroy(packed_w);
  if (user_w) dnnl_memory_destroy(user_w);
  if (attr) dnnl_primitive_attr_destroy(attr);
  free(user_w_buf);
  return rc;
}

static int dnnl_run(kf_peer *p, int64_t iter, char *err, size_t err_len) {
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->src_mem},
                             {DNNL_ARG_WEIGHTS, p->w_mems[iter % p->weights.n_copies]},
                             {DNNL_ARG_DST, p->dst_mem}};
  omp_set_num_threads(p->threads);
  DNNL_TRY(dnnl_primitive_execute(p->prim, p->stream, 3, args));
  DNNL_TRY(dnnl_stream_wait(p->stream));
  return 0;
fail:
  return -1;
}

/* ------------------------------------------------------------------------------------------- */
/* OpenBLAS dequant + sgemm                                                                    */

typedef struct dequant_job {
  const int8_t *codes;
  const float *scale;
  float *out;
  int64_t row_begin, row_end, K;
} dequant_job;

static void *dequant_rows(void *arg) {
  dequant_job *job = arg;
  for (int64_t n = job->row_begin; n < job->row_end; n++) {
    const int8_t *c = job->codes + n * job->K;
    float *o = job->out + n * job->K;
    float s = job->scale[n];
    for (int64_t k = 0; k < job->K; k++) o[k] = (float)c[k] * s;
  }
  return NULL;
}

/* w_f32 = codes · scale with `threads` threads (threads − 1 started per call, the caller does
** one part): the plain parallel loop a user would write. A thread that cannot be started has its
** rows done by the caller. */
static void dequant_parallel(kf_peer *p, const int8_t *codes) {
  enum { MAX_THREADS = 256 };
  int nt = p->threads < MAX_THREADS ? p->threads : MAX_THREADS;
  if (nt > p->N) nt = (int)p->N;
  pthread_t tids[MAX_THREADS];
  dequant_job jobs[MAX_THREADS] = {0};
  int started[MAX_THREADS] = {0};
  for (int t = 0; t < nt; t++)
    jobs[t] = (dequant_job){codes, p->w_scale, p->w_f32, p->N * t / nt, p->N * (t + 1) / nt,
                            p->K};
  for (int t = 1; t < nt; t++)
    started[t] = pthread_create(&tids[t], NULL, dequant_rows, &jobs[t]) == 0;
  dequant_rows(&jobs[0]);
  for (int t = 1; t < nt; t++) {
    if (started[t]) pthread_join(tids[t], NULL);
    else dequant_rows(&jobs[t]);
  }
}

static int blas_prepare(kf_peer *p, const int8_t *wq, const float *w_scale, const float *x,
                        int cold, char *err, size_t err_len) {
  int64_t M = p->M, N = p->N, K = p->K;
  if (kf_bench_rot_init(&p->weights, wq, (size_t)(N * K), cold, 0, err, err_len)) return -1;
  p->weight_bytes = N * K;
  p->w_scale = malloc((size_t)N * sizeof *p->w_scale);
  p->x_f32 = malloc((size_t)(M * K) * sizeof *p->x_f32);
  p->w_f32 = malloc((size_t)(N * K) * sizeof *p->w_f32);
  p->y = calloc((size_t)(M * N), sizeof *p->y);
  if (!p->w_scale || !p->x_f32 || !p->w_f32 || !p->y) {
    set_err(err, err_len, "blas_deq: out of memory (f32 weight buffer %lld bytes)",
            (long long)(N * K * 4));
    return -1;
  }
  memcpy(p->w_scale, w_scale, (size_t)N * sizeof *p->w_scale);
  for (int64_t i = 0; i < M * K; i++) p->x_f32[i] = kf_ref_bf16_round(x[i]);
  snprintf(p->impl, sizeof p->impl, "OpenBLAS %s", openblas_get_corename());
  return 0;
}

static int blas_run(kf_peer *p, int64_t iter) {
  const int8_t *codes = kf_bench_rot_get(&p->weights, iter);
  dequant_parallel(p, codes);
  openblas_set_num_threads(p->threads);
  /* y (M×N) = x (M×K) · W_f32ᵀ (W_f32 is N×K row-major). */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)p->M, (blasint)p->N,
              (blasint)p->K, 1.0f, p->x_f32, (blasint)p->K, p->w_f32, (blasint)p->K, 0.0f, p->y,
              (blasint)p->N);
  return 0;
}

/* ------------------------------------------------------------------------------------------- */

kf_peer *kf_peer_create(kf_peer_kind kind, int64_t M, int64_t N, int64_t K, const int8_t *wq,
                        const float *w_scale, const float *x, int threads, int cold,
                        char *err, size_t err_len) {
  if ((unsigned)kind >= KF_PEER_N) {
    set_err(err, err_len, "kf_peer_create: unknown peer kind %d", (int)kind);
    return NULL;
  }
  if (M <= 0 || N <= 0 || K <= 0 || M > (1 << 30) || N > (1 << 30) || K > (1 << 30) ||
      N * K > ((int64_t)1 << 40)) {
    set_err(err, err_len, "%s: bad shape M=%lld N=%lld K=%lld (each must be in 1..2^30)",
            peer_names[kind], (long long)M, (long long)N, (long long)K);
    return NULL;
  }
  if (threads < 1) {
    set_err(err, err_len, "%s: threads=%d, must be >= 1", peer_names[kind], threads);
    return NULL;
  }
  if (!wq || !w_scale || !x) {
    set_err(err, err_len, "%s: NULL weights, scales or activations", peer_names[kind]);
    return NULL;
  }
  kf_peer *p = calloc(1, sizeof *p);
  if (!p) {
    set_err(err, err_len, "%s: out of memory", peer_names[kind]);
    return NULL;
  }
  p->kind = kind;
  p->M = M, p->N = N, p->K = K;
  p->threads = threads;
  int rc = kind == KF_PEER_BLAS_DEQ ? blas_prepare(p, wq, w_scale, x, cold, err, err_len)
                                    : dnnl_prepare(p, wq, w_scale, x, cold, err, err_len);
  if (rc) {
    kf_peer_destroy(p);
    return NULL;
  }
  return p;
}

int kf_peer_run(kf_peer *peer, int64_t iter, char *err, size_t err_len) {
  if (!peer || iter < 0) {
    set_err(err, err_len, "kf_peer_run: %s", peer ? "negative iteration" : "NULL peer");
    return -1;
  }
  return peer->kind == KF_PEER_BLAS_DEQ ? blas_run(peer, iter)
                                        : dnnl_run(peer, iter, err, err_len);
}

const float *kf_peer_y(const kf_peer *peer) { return peer->y; }
int kf_peer_n_copies(const kf_peer *peer) { return peer->weights.n_copies; }
int64_t kf_peer_weight_bytes(const kf_peer *peer) { return peer->weight_bytes; }
const char *kf_peer_impl(const kf_peer *peer) { return peer->impl; }

void kf_peer_destroy(kf_peer *p) {
  if (!p) return;
  for (int i = 0; p->w_mems && i < p->weights.n_copies; i++)
    if (p->w_mems[i]) dnnl_memory_destroy(p->w_mems[i]);
  free(p->w_mems);
  if (p->src_mem) dnnl_memory_destroy(p->src_mem);
  if (p->dst_mem) dnnl_memory_destroy(p->dst_mem);
  if (p->prim) dnnl_primitive_destroy(p->prim);
  if (p->pd) dnnl_primitive_desc_destroy(p->pd);
  if (p->stream) dnnl_stream_destroy(p->stream);
  if (p->engine) dnnl_engine_destroy(p->engine);
  kf_bench_rot_free(&p->weights);
  free(p->src_buf);
  free(p->out_scales);
  free(p->y);
  free(p->w_scale);
  free(p->x_f32);
  free(p->w_f32);
  free(p);
}

/* ------------------------------------------------------------------------------------------- */
/* One shape, every peer                                                                      */

/* Checks up to 64 sampled outputs of one run against an fp64 dot product over the operands the
** peer reads, with the bound of its arithmetic (see test_peers.c for the derivation): a peer that
** computes a wrong result is reported as failed, never timed. Returns 0 or -1 with a message. */
static int check_sample(kf_peer *peer, const int8_t *wq, const float *w_scale, const float *x,
                        char *err, size_t err_len) {
  int64_t M = peer->M, N = peer->N, K = peer->K;
  uint8_t *u = NULL;
  float s_x = 1;
  if (peer->kind == KF_PEER_DNNL_U8S8) {
    u = malloc((size_t)(M * K));
    if (!u) {
      set_err(err, err_len, "%s: out of memory for the result check", peer_names[peer->kind]);
      return -1;
    }
    s_x = kf_peer_quantize_u8(x, M * K, u);
  }
  if (kf_peer_run(peer, 0, err, err_len)) {
    free(u);
    return -1;
  }
  kf_rng rng;
  kf_rng_seed(&rng, 1);
  int rc = 0;
  for (int i = 0; i < 64 && rc == 0; i++) {
    int64_t m = (int64_t)kf_rng_below(&rng, (uint64_t)M);
    int64_t n = (int64_t)kf_rng_below(&rng, (uint64_t)N);
    double y = 0, abs_y = 0;
    for (int64_t k = 0; k < K; k++) {
      int8_t c = wq[n * K + k];
      double term;
      if (peer->kind == KF_PEER_DNNL_U8S8) term = (double)c * ((int)u[m * K + k] - 128);
      else if (peer->kind == KF_PEER_DNNL_BF16)
        term = (double)kf_peer_bf16_weight(c, w_scale[n]) * (double)kf_ref_bf16_round(x[m * K + k]);
      else term = (double)c * (double)w_scale[n] * (double)kf_ref_bf16_round(x[m * K + k]);
      y += term;
      abs_y += fabs(term);
    }
    double bound;
    if (peer->kind == KF_PEER_DNNL_U8S8) {
      y *= (double)(s_x * w_scale[n]);
      bound = 2 * 0x1p-24 * fabs(y);
    } else {
      bound = (double)(K + 2) * 0x1p-24 * abs_y;
    }
    double got = peer->y[m * N + n];
    if (!(fabs(got - y) <= bound)) {
      set_err(err, err_len, "%s: wrong result y[%lld][%lld] = %.9g, reference %.9g, bound %.3g",
              peer_names[peer->kind], (long long)m, (long long)n, got, y, bound);
      rc = -1;
    }
  }
  free(u);
  return rc;
}

typedef struct timed_call {
  kf_peer *peer;
  char *err;
  size_t err_len;
} timed_call;

static int timed_run(void *arg, int64_t iter) {
  timed_call *c = arg;
  return kf_peer_run(c->peer, iter, c->err, c->err_len);
}

/* Shared data, fixed seed: int8 codes uniform in [-127, 127], per-channel scales
** (0.5 + U)/(127·sqrt K) so y is O(1), activations N(0, 1) rounded to bf16. NULL: no memory. */
typedef struct peer_data {
  int8_t *wq;
  float *w_scale, *x;
} peer_data;

static int peer_data_new(int64_t M, int64_t N, int64_t K, peer_data *d) {
  d->wq = malloc((size_t)(N * K));
  d->w_scale = malloc((size_t)N * sizeof *d->w_scale);
  d->x = malloc((size_t)(M * K) * sizeof *d->x);
  if (!d->wq || !d->w_scale || !d->x) return -1;
  kf_rng rng;
  kf_rng_seed(&rng, 20260513);
  for (int64_t i = 0; i < N * K; i++) d->wq[i] = (int8_t)((int)kf_rng_below(&rng, 255) - 127);
  for (int64_t n = 0; n < N; n++)
    d->w_scale[n] = (float)((0.5 + kf_rng_uniform(&rng)) / (127.0 * sqrt((double)K)));
  kf_ref_fill(&rng, KF_REF_GAUSS, 1.0, 1, M, K, d->x);
  return 0;
}

static void peer_data_free(peer_data *d) {
  free(d->wq);
  free(d->w_scale);
  free(d->x);
}

static int bad_shape(int64_t M, int64_t N, int64_t K, int threads, kf_peer_result *out, int max_out) {
  if (M > 0 && N > 0 && K > 0 && threads >= 1) return 0;
  if (out && max_out > 0) {
    memset(out, 0, sizeof *out);
    snprintf(out->note, sizeof out->note, "kf_peers_gemm: bad arguments M=%lld N=%lld K=%lld threads=%d",
             (long long)M, (long long)N, (long long)K, threads);
  }
  return 1;
}

/* Creates and checks one peer; NULL with r->note set when it is unavailable or wrong. */
static kf_peer *create_checked(kf_peer_kind kind, int64_t M, int64_t N, int64_t K, const peer_data *d,
                               int threads, int cold, kf_peer_result *r) {
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", peer_names[kind]);
  char err[160] = "";
  kf_peer *peer = kf_peer_create(kind, M, N, K, d->wq, d->w_scale, d->x, threads, cold, err, sizeof err);
  if (!peer) {
    snprintf(r->note, sizeof r->note, "%s", err);
    return NULL;
  }
  /* Let the previous peer's spinning worker threads (OpenMP / OpenBLAS) go idle. */
  struct timespec pause = {0, 100 * 1000 * 1000};
  nanosleep(&pause, NULL);
  r->weight_bytes = kf_peer_weight_bytes(peer);
  r->n_copies = kf_peer_n_copies(peer);
  if (check_sample(peer, d->wq, d->w_scale, d->x, err, sizeof err)) {
    snprintf(r->note, sizeof r->note, "%s", err);
    kf_peer_destroy(peer);
    return NULL;
  }
  snprintf(r->note, sizeof r->note, "%s; %d weight cop%s", kf_peer_impl(peer), kf_peer_n_copies(peer),
           kf_peer_n_copies(peer) == 1 ? "y" : "ies");
  return peer;
}

int kf_peers_create_all(int64_t M, int64_t N, int64_t K, int threads, int cold, kf_peer **peers,
                        kf_peer_result *info) {
  if (bad_shape(M, N, K, threads, info, 1)) return -1;
  peer_data d;
  int nomem = peer_data_new(M, N, K, &d);
  for (int kind = 0; kind < KF_PEER_N; kind++) {
    peers[kind] = NULL;
    if (nomem) {
      memset(&info[kind], 0, sizeof info[kind]);
      snprintf(info[kind].name, sizeof info[kind].name, "%s", peer_names[kind]);
      snprintf(info[kind].note, sizeof info[kind].note, "out of memory for N*K=%lld", (long long)(N * K));
    } else {
      peers[kind] = create_checked((kf_peer_kind)kind, M, N, K, &d, threads, cold, &info[kind]);
    }
  }
  peer_data_free(&d);
  return KF_PEER_N;
}

int kf_peers_gemm(int64_t M, int64_t N, int64_t K, int threads, int cold, double budget_s,
                  kf_peer_result *out, int max_out) {
  if (!out || max_out < 0 || bad_shape(M, N, K, threads, out, max_out)) return -1;
  peer_data d;
  int n_out = 0;
  if (peer_data_new(M, N, K, &d)) {
    if (max_out > 0) {
      memset(out, 0, sizeof *out);
      snprintf(out->note, sizeof out->note, "kf_peers_gemm: out of memory for N*K=%lld",
               (long long)(N * K));
      n_out = 1;
    }
    peer_data_free(&d);
    return n_out;
  }
  for (int kind = 0; kind < KF_PEER_N && n_out < max_out; kind++) {
    kf_peer_result *r = &out[n_out++];
    kf_peer *peer = create_checked((kf_peer_kind)kind, M, N, K, &d, threads, cold, r);
    if (!peer) continue;
    char err[160] = "";
    timed_call call = {peer, err, sizeof err};
    kf_bench_opts opts = {.warmup = 2, .min_runs = 3, .budget_s = budget_s > 0 ? budget_s : 1.0};
    kf_bench_stats st;
    if (kf_bench_run(timed_run, &call, &opts, &st)) {
      snprintf(r->note, sizeof r->note, "%s", err[0] ? err : "timing failed");
    } else {
      r->ok = 1;
      r->median_s = st.median_s, r->min_s = st.min_s, r->p10_s = st.p10_s, r->p90_s = st.p90_s;
      r->n_runs = st.n_runs;
    }
    kf_peer_destroy(peer);
  }
  peer_data_free(&d);
  return n_out;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
  case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
  case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
  case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
  case dnnl_cpu_isa_avx512_core: return "avx512_core";
  case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
  case dnnl_cpu_isa_avx2: return "avx2";
  default: return "other";
  }
}

void kf_peers_describe(char *buf, size_t len) {
  const dnnl_version_t *v = dnnl_version();
  snprintf(buf, len, "oneDNN %d.%d.%d (%s runtime, max ISA %s); %s",
           v->major, v->minor, v->patch,
           v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "non-OpenMP",
           isa_name(dnnl_get_effective_cpu_isa()), openblas_get_config());
}
