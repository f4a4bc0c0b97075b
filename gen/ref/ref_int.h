/*
** ref_int.h: inside the reference families (gen/ref/): the problem object and the helpers
** the families share. Not installed; callers use gen/check.h.
**
** A reference family (gemm_q, attn_decode, mla_decode, attn_q) is named by a template's
** `reference` field and makes a problem for a built kernel: inputs in the kernel's formats,
** the fp64 reference output and a per-output error bound. What a family knows of the kernel
** comes from the kernel's IR (its arguments and the numerics of its ops, kf_kernel_numerics)
** and from the shape parameters the family defines (M, N, K; B, H, HKV, S, D, DV, ...),
** never from the names of a template's tunables.
*/
#ifndef KF_REF_INT_H
#define KF_REF_INT_H

#include "check.h"
#include "kf_quant.h"
#include "kf_ref.h"

struct kf_problem {
  const kf_ref_family *family;
  int mla;          /* attention families: one shared latent KV head (mla_decode) */
  const kf_kernel *k;
  kf_kernel_numerics num; /* what the kernel's IR says of its arithmetic */
  int n_args;
  void **args;
  size_t *arg_bytes;
  int weight_arg;
  int64_t out_n;
  float *out;       /* points into args (the output) */
  double *ref, *bound;
  double flops, bytes;
  /* gemm */
  kf_qweight qw;
  int64_t M, N, K;
  /* attention */
  int64_t B, H, HKV, S, D, DV, block;
  double scale;
  double *kd, *vd; /* exact dequantized INT8 KV cache (kvq baseline, attn_q) */
  int64_t *check_rows; /* gemm: the output rows the reference covers (ref/bound are per such row) */
  int8_t *mx_value;    /* gemm, MXFP4 nibble weights: 2 * E2M1 value per weight (N x K) */
  int64_t n_check_rows;
};

/* A shape parameter of the kernel (the family's own names), def when absent. */
int64_t kf_ref_param(const kf_kernel *k, const char *name, int64_t def);
/* Argument i must be `name` of dtype dt (what: its meaning, for the message). */
int kf_ref_expect_arg(kf_ctx *ctx, const kf_kernel *k, int i, const char *name, kf_scalar dt, const char *what);
/* Elements of argument i as the kernel declares it. */
int64_t kf_ref_arg_elems(const kf_kernel *k, int i);

/* Input and output buffers end right before an unmapped page, so a kernel that reads or
** writes past a buffer faults at once (in every build) instead of reading its neighbour.
** NULL when the memory is not there (the caller reports KF_ENOMEM). */
void *kf_ref_alloc_guarded(size_t bytes);
void kf_ref_free_guarded(void *ptr);

/* The families (one file each). */
extern const kf_ref_family kf_ref_family_gemm_q, kf_ref_family_attn_decode, kf_ref_family_mla_decode,
    kf_ref_family_attn_q;

#endif
