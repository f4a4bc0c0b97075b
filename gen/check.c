/*
** check.c: problems for kernels (see check.h): the registry of reference families, what the
** IR says of a kernel's numerics, and what is common to every family: memory, the argument
** table, the comparison with the reference. The families themselves are in gen/ref/.
*/
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ref/ref_int.h"

/* ---- the registry ---- */

static const kf_ref_family *const families[] = {&kf_ref_family_gemm_q, &kf_ref_family_attn_decode,
                                                &kf_ref_family_mla_decode, &kf_ref_family_attn_q, NULL};

const kf_ref_family *kf_ref_family_find(const char *name) {
  for (int i = 0; name && families[i]; i++)
    if (!strcmp(families[i]->name, name)) return families[i];
  return NULL;
}

void kf_ref_family_names(kf_str *out) {
  for (int i = 0; families[i]; i++) kf_str_printf(out, "%s%s", i ? ", " : "", families[i]->name);
}

int kf_ref_family_of(kf_ctx *ctx, const kf_template *t, const kf_ref_family **out) {
  *out = kf_ref_family_find(kf_template_reference(t));
  if (*out) return KF_OK;
  kf_str names = {0};
  kf_ref_family_names(&names);
  int rc = kf_err(ctx, KF_EINVAL, "%s: unknown reference '%s' (known: %s)", kf_template_path(t),
                  kf_template_reference(t) ? kf_template_reference(t) : "", names.data);
  kf_str_free(&names);
  return rc;
}

/* ---- what the IR says ---- */

static void numerics_walk(const kf_ir_block *b, kf_kernel_numerics *n) {
  for (size_t i = 0; i < b->len; i++) {
    const kf_ir_node *x = b->data[i];
    switch (x->op) {
    case KF_OP_LOOP: numerics_walk(&x->body, n); break;
    case KF_OP_QUANTIZE:
      if (n->n_quantize++ == 0) {
        n->passes = (int)x->i[KF_QUANTIZE_PASSES_ATTR];
        n->act_group = x->i[KF_QUANTIZE_ACT_GROUP_ATTR];
        n->sum_group = x->i[KF_QUANTIZE_SUM_GROUP_ATTR];
        n->act_mxfp4 = x->i[KF_QUANTIZE_FORMAT_ATTR] != 0; /* format: 0 int8, 1 mxfp4 */
      }
      break;
    case KF_OP_MMA: n->mma_round_bf16 |= x->i[KF_MMA_ROUND_BF16_ATTR] != 0; break;
    case KF_OP_SOFTMAX:
      n->softmax_amla |= x->i[KF_SOFTMAX_AMLA_ATTR] != 0;
      n->softmax_p_bf16 |= x->i[KF_SOFTMAX_P_BF16_ATTR] != 0;
      break;
    case KF_OP_QK: { /* the key tile {.., keys, D} */
      const kf_tile *kt = &x->t[KF_QK_K];
      if (!n->key_block && kt->rank >= 2) n->key_block = kt->ext[kt->rank - 2];
      break;
    }
    default: break;
    }
  }
}

void kf_kernel_numerics_of(const kf_ir_kernel *ir, kf_kernel_numerics *out) {
  memset(out, 0, sizeof *out);
  numerics_walk(&ir->body, out);
}

void kf_problem_key(const kf_kernel *k, kf_str *out) {
  kf_str_printf(out, "ref=%s;", kf_template_reference(k->tmpl));
  kf_binding_format(&k->params, out);
  for (int i = 0; i < kf_kernel_n_args(k); i++) {
    const kf_ir_buf *b = kf_kernel_arg(k, i);
    kf_str_printf(out, ";%s:%s:%d", b->name, kf_scalar_name(b->dtype), (int)b->level);
    for (int d = 0; d < b->rank; d++) kf_str_printf(out, "%s%lld", d ? "x" : "[", (long long)b->dims[d]);
    kf_str_printf(out, "]L%d", (int)b->layout);
    if (b->layout != KF_LAYOUT_ROW)
      kf_str_printf(out, "b%dp%dg%lldm%d", b->wbits, b->wlayout, (long long)b->wgroup, b->wmx);
  }
  kf_kernel_numerics n;
  kf_kernel_numerics_of(k->ir, &n);
  kf_str_printf(out, ";q%d:%d:%d:%lld:%lld;r%d;s%d:%d;kb%lld", n.n_quantize, n.passes, n.act_mxfp4,
                (long long)n.act_group, (long long)n.sum_group, n.mma_round_bf16, n.softmax_amla,
                n.softmax_p_bf16, (long long)n.key_block);
}

/* ---- shared by the families ---- */

int64_t kf_ref_param(const kf_kernel *k, const char *name, int64_t def) {
  int64_t v;
  return kf_binding_get(&k->params, name, &v) ? v : def;
}

int kf_ref_expect_arg(kf_ctx *ctx, const kf_kernel *k, int i, const char *name, kf_scalar dt,
                      const char *what) {
  const kf_ir_buf *b = kf_kernel_arg(k, i);
  if (!b || strcmp(b->name, name) || b->dtype != dt)
    return kf_err(ctx, KF_EINVAL,
                  "%s: reference '%s' expects argument %d to be '%s' (%s, %s); the template declares %s%s%s",
                  kf_template_path(k->tmpl), kf_template_reference(k->tmpl), i + 1, name,
                  kf_scalar_name(dt), what, b ? "'" : "nothing", b ? b->name : "", b ? "'" : "");
  return KF_OK;
}

int64_t kf_ref_arg_elems(const kf_kernel *k, int i) {
  const kf_ir_buf *b = kf_kernel_arg(k, i);
  return b ? kf_ir_buf_elems(b) : 0;
}

/* The mapping's base and length sit in the 64 bytes before the returned pointer. */
void *kf_ref_alloc_guarded(size_t bytes) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), b64 = (bytes + 63) & ~(size_t)63;
  size_t body = (b64 + 64 + page - 1) / page * page, len = body + page;
  unsigned char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  kf_assert(base != MAP_FAILED);
  kf_assert(mprotect(base + body, page, PROT_NONE) == 0);
  unsigned char *p = base + body - b64;
  memcpy(p - 64, &base, sizeof base);
  memcpy(p - 64 + sizeof base, &len, sizeof len);
  return p;
}

void kf_ref_free_guarded(void *ptr) {
  if (!ptr) return;
  unsigned char *base;
  size_t len;
  memcpy(&base, (unsigned char *)ptr - 64, sizeof base);
  memcpy(&len, (unsigned char *)ptr - 64 + sizeof base, sizeof len);
  munmap(base, len);
}



static int fits_memory(kf_ctx *ctx, const kf_kernel *k) {
  double need = 0, big = 0;
  const char *big_name = "";
  for (int i = 0; i < kf_kernel_n_args(k); i++) {
    const kf_ir_buf *b = kf_kernel_arg(k, i);
    double e = 1;
    for (int d = 0; d < b->rank; d++) e *= (double)b->dims[d];
    double by = e * (kf_scalar_bits(b->dtype) / 8.0 + 12.0);
    need += by;
    if (by > big) {
      big = by;
      big_name = b->name;
    }
  }
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  double ram = pages > 0 && psz > 0 ? (double)pages * (double)psz : 0;
  if (ram > 0 && need > 0.8 * ram)
    return kf_err(ctx, KF_EINVAL, "%s: this shape's inputs and reference need about %.3g GB (most for '%s': %.3g GB); "
                  "this machine has %.3g GB of memory (generate code for it with kforge gen; check or time a smaller shape)",
                  kf_template_path(k->tmpl), need / 1e9, big_name, big / 1e9, ram / 1e9);
  return KF_OK;
}

int kf_problem_new(kf_ctx *ctx, const kf_kernel *k, uint64_t seed, int act_dist, kf_problem **out) {
  *out = NULL;
  const kf_ref_family *fam;
  int rc = kf_ref_family_of(ctx, k->tmpl, &fam);
  if (!rc) rc = fits_memory(ctx, k);
  if (rc) return rc;
  kf_problem *p = kf_xcalloc(1, sizeof *p);
  p->k = k;
  p->family = fam;
  kf_kernel_numerics_of(k->ir, &p->num);
  rc = fam->make(ctx, p, seed, act_dist);
  if (!rc && p->n_args != kf_kernel_n_args(k))
    rc = kf_err(ctx, KF_EINVAL, "%s: reference '%s' has %d arguments, the kernel %d", kf_template_path(k->tmpl),
                fam->name, p->n_args, kf_kernel_n_args(k));
  if (rc) {
    kf_problem_free(p);
    return rc;
  }
  *out = p;
  return KF_OK;
}

void kf_problem_free(kf_problem *p) {
  if (!p) return;
  if (p->family == &kf_ref_family_gemm_q) {
    if (p->args)
      for (int i = 0; i < 3; i++) kf_ref_free_guarded(p->args[i]);
    kf_ref_free_guarded(p->out);
    kf_qweight_free(&p->qw);
  } else if (p->args) {
    for (int i = 0; i < p->n_args; i++) kf_ref_free_guarded(p->args[i]); /* out is among them */
  } else {
    kf_ref_free_guarded(p->out);
  }
  free(p->args);
  free(p->arg_bytes);
  free(p->ref);
  free(p->bound);
  free(p->kd);
  free(p->vd);
  free(p->check_rows);
  free(p->mx_value);
  free(p);
}

void *const *kf_problem_args(const kf_problem *p) { return p->args; }
int kf_problem_weight_arg(const kf_problem *p, size_t *bytes) {
  if (bytes) *bytes = p->arg_bytes[p->weight_arg];
  return p->weight_arg;
}
double kf_problem_flops(const kf_problem *p) { return p->flops; }
double kf_problem_bytes(const kf_problem *p) { return p->bytes; }

void kf_problem_poison_outputs(kf_problem *p) {
  for (int64_t i = 0; i < p->out_n; i++) p->out[i] = NAN;
}

const float *kf_problem_output(const kf_problem *p, int64_t *n) {
  if (n) *n = p->out_n;
  return p->out;
}

int kf_problem_check(kf_ctx *ctx, kf_problem *p, kf_check_result *res) {
  memset(res, 0, sizeof *res);
  kf_ref_errs e;
  const float *got = p->out;
  int64_t n_cmp = p->out_n;
  float *gathered = NULL;
  int64_t nonfinite_all = 0, first_nonfinite = -1;
  for (int64_t i = 0; i < p->out_n; i++)
    if (!isfinite(p->out[i]) && nonfinite_all++ == 0) first_nonfinite = i;
  if (p->check_rows && p->n_check_rows * p->N != p->out_n) { /* sampled rows */
    n_cmp = p->n_check_rows * p->N;
    gathered = kf_xmalloc((size_t)n_cmp * sizeof(float));
    for (int64_t r = 0; r < p->n_check_rows; r++)
      memcpy(gathered + r * p->N, p->out + p->check_rows[r] * p->N, (size_t)p->N * sizeof(float));
    got = gathered;
  }
  int src = kf_ref_err_stats_bound(got, p->ref, p->bound, n_cmp, &e);
  free(gathered);
  if (src) return kf_err(ctx, KF_EINVAL, "error statistics failed");
  if (nonfinite_all && !e.n_nonfinite) {
    e.n_nonfinite = nonfinite_all;
    e.i_max = first_nonfinite;
  }
  res->max_abs = e.max_abs;
  res->rel_l2 = e.rel_l2;
  res->max_ratio = e.max_ratio;
  res->eff_bits = e.eff_bits;
  res->snr_bits = e.snr_bits;
  res->ref_max = e.ref_max_abs;
  res->n_out = p->out_n;
  res->n_nonfinite = e.n_nonfinite;
  res->worst_index = e.i_max;
  p->family->describe_bound(p, res->bound_desc, sizeof res->bound_desc);
  if (e.n_nonfinite)
    return kf_err(ctx, KF_ECHECK, "%lld of %lld outputs are not finite (first at index %lld)",
                  (long long)e.n_nonfinite, (long long)p->out_n, (long long)e.i_max);
  if (!(e.max_ratio <= 1.0))
    return kf_err(ctx, KF_ECHECK, "error exceeds the bound: worst output %lld has |err|/bound = %.3g",
                  (long long)e.i_max, e.max_ratio);
  return KF_OK;
}

void kf_problem_recompute_reference(kf_problem *p) {
  if (p->family->recompute) p->family->recompute(p);
}
