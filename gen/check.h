/*
** check.h: problems = inputs + fp64 reference + error bounds for a kernel, made by the
** reference family the template names (`reference = "gemm_q"`, gen/ref/ one file per
** family). Shared by `kforge check`, `kforge bench`, `kforge sim`, the tuner and the tests.
**
** Bounds come from the arithmetic (DESIGN.md section 4), per output element:
**  - float GEMM on dequantized weights (f32 FMA chain over K terms, one rounding of each
**    dequantized weight): gamma_{K+2} * sum_k |w||x|;
**  - MSD with P passes: sum_k |w| * s_P/2 (the activation decomposition, s_P =
**    amax/127/254^(P-1) of the row or group, plus 2^-10 for f32 rounding of the scales),
**    plus gamma_{P*spans+3} * sum_k |w|(|x| + s_P/2) for the f32 combination of the exact
**    int32 span sums.
*/
#ifndef KF_CHECK_H
#define KF_CHECK_H

#include "kernel.h"

typedef struct kf_problem kf_problem;

/* What a kernel's IR says of its arithmetic: the reference families derive their bounds from
** this, not from a template's parameter or tunable names. Read off the first node of each kind
** (a kernel whose nodes of one kind disagree is refused by the family that cares). */
typedef struct kf_kernel_numerics {
  int n_quantize;      /* quantize nodes (MSD decompositions) */
  int passes;          /* passes of the first quantize; 0 without one (a float kernel) */
  int act_mxfp4;       /* the first quantize splits into MXFP4 passes (else INT8) */
  int64_t act_group;   /* its activation scale group (0: per row) */
  int64_t sum_group;   /* its sum group: the k span accumulated in int32 (0: the whole row) */
  int mma_round_bf16;  /* an mma rounds dequantized weights to bf16 */
  int softmax_amla;    /* a softmax uses AMLA's 2^k integer rescale */
  int softmax_p_bf16;  /* a softmax rounds P to bf16 */
  int64_t key_block;   /* keys per qk block (attention; 0 without qk) */
} kf_kernel_numerics;
void kf_kernel_numerics_of(const kf_ir_kernel *ir, kf_kernel_numerics *out);

/* A reference family: how to make a problem for kernels whose template says `reference =
** NAME`. The registry below is the one place that lists them. */
typedef struct kf_ref_family {
  const char *name;
  const char *what;             /* one line, for `kforge list` and errors */
  /* Inputs in the kernel's formats, the fp64 reference and the bound, into p (p->k, p->num,
  ** p->family set). */
  int (*make)(kf_ctx *ctx, kf_problem *p, uint64_t seed, int dist);
  /* Reference and bounds again after a caller edited the inputs (NULL: not supported). */
  void (*recompute)(kf_problem *p);
  /* The bound's formula in words, into res->bound_desc. */
  void (*describe_bound)(const kf_problem *p, char *out, size_t n);
  /* Nominal FLOPs of one call at these shape parameters (for TFLOPS / peak fractions). */
  double (*flops)(const kf_binding *params);
  const char *batch_param;      /* the parameter a sampled check cuts down (M, B) */
  int64_t sample_batch;         /* to this value by default */
} kf_ref_family;

/* The family named `name`, or NULL (then kf_ref_family_names lists the known ones). */
const kf_ref_family *kf_ref_family_find(const char *name);
void kf_ref_family_names(kf_str *out); /* "gemm_q, attn_decode, ..." */
/* The family of a template (KF_EINVAL naming the template and the known families). */
int kf_ref_family_of(kf_ctx *ctx, const kf_template *t, const kf_ref_family **out);

/* Everything a problem for kernel k reads, as one string: the shape parameters, every
** argument's name, type, dims and layout, and the IR numerics. Two kernels with the same key
** get identical problems (the tuner shares one problem between their trials). */
void kf_problem_key(const kf_kernel *k, kf_str *out);

typedef struct kf_check_result {
  double max_abs, rel_l2, max_ratio, eff_bits, snr_bits, ref_max;
  int64_t n_out, n_nonfinite, worst_index;
  char bound_desc[160];
} kf_check_result;

/* act_dist: for GEMMs a kf_ref_dist (gauss, uniform, ...); for attention a
** kf_ref_attn_kind (random, rising, equal, large, negative). */
int kf_problem_new(kf_ctx *ctx, const kf_kernel *k, uint64_t seed, int act_dist, kf_problem **out);
void kf_problem_free(kf_problem *p);
void *const *kf_problem_args(const kf_problem *p);
/* Index of the argument holding the weights (for cold-cache rotation), its size, and the
** flops and bytes of one call (for GFLOPS/GB/s). */
int kf_problem_weight_arg(const kf_problem *p, size_t *bytes);
double kf_problem_flops(const kf_problem *p);
double kf_problem_bytes(const kf_problem *p);
/* Clears the outputs (NaN) so a kernel that writes nothing fails the check. */
void kf_problem_poison_outputs(kf_problem *p);
/* Compares the kernel's outputs (already computed in the args) with the fp64 reference. */
int kf_problem_check(kf_ctx *ctx, kf_problem *p, kf_check_result *res);
/* Recomputes the reference and bounds after a caller edited the inputs in the args
** (attention problems; tests use it to build special cases). */
void kf_problem_recompute_reference(kf_problem *p);
/* attn_q problems: rel L2 error of single-pass MXFP8 (E4M3) Q and P on the same inputs and
** cache (an fp64 simulation: the comparison for MSD over an MXFP4 cache); -1 otherwise. */
double kf_problem_attn_mxfp8_rel_l2(const kf_problem *p);
/* Float outputs of the last run (for comparing two emitters). */
const float *kf_problem_output(const kf_problem *p, int64_t *n);

/* Times the loaded kernel behind r on p's inputs (kf_bench: warm-up, then repeats for
** budget_s and at least min_runs), weights warm (cold = 0) or from a rotating set of copies
** at least twice the last-level cache (cold = 1). */
struct kf_bench_stats;
int kf_problem_time(kf_ctx *ctx, kf_problem *p, kf_runner *r, int n_args, int cold, int min_runs,
                    double budget_s, struct kf_bench_stats *out);

#endif
