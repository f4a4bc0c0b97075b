/*
** kforge.h: the public API of libkforge, the kernel generator, for programs that generate,
** compile and run kernels at run time (no command line). Link with -lkforge (pkg-config kforge,
** or find_package(kforge) + kforge::kforge).
**
**   kforge *kf = kforge_new();
**   kforge_kernel *k;
**   if (kforge_kernel_new(kf, "msd_gemm", "M=1,N=4096,K=4096", NULL, NULL, &k))
**     fprintf(stderr, "%s\n", kforge_errmsg(kf));
**   ... fill the arguments (kforge_kernel_arg says each one's type, dims and layout; packed
**   weights and bf16 activations with <kforge/quant.h>) ...
**   kforge_kernel_run(kf, k, args);
**   kforge_kernel_free(k);
**   kforge_free(kf);
**
** Every function that can fail returns a status (KFORGE_OK = 0) and leaves a message naming the
** problem and where (template file:line) in kforge_errmsg. A context is not thread-safe; two
** contexts may be used from two threads.
*/
#ifndef KFORGE_H
#define KFORGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KFORGE_VERSION_STRING "0.1.0"

enum {
  KFORGE_OK = 0,
  KFORGE_EINVAL = 1,   /* bad input: template, shape, tunable, target, file */
  KFORGE_ENOMEM = 2,
  KFORGE_EIO = 3,      /* file or process I/O */
  KFORGE_ECOMPILE = 4, /* the C compiler or LLVM refused the generated code */
  KFORGE_EUNSUP = 5,   /* not available on this target, machine or build */
  KFORGE_ECHECK = 6    /* a kernel's result exceeded its error bound */
};

typedef struct kforge kforge;               /* a context */
typedef struct kforge_kernel kforge_kernel; /* a generated, loaded kernel */

/* The library's version ("0.1.0"). */
const char *kforge_version(void);

/* A new context (NULL when out of memory); its kernels run on `n_threads` worker threads
** (0: every online CPU), created once on first use. */
kforge *kforge_new(void);
int kforge_set_threads(kforge *kf, int n_threads);
void kforge_free(kforge *kf);
/* The last error's message ("no error" when there was none). */
const char *kforge_errmsg(const kforge *kf);

/* Where templates are looked up by name: $KFORGE_TEMPLATES, else the installed
** PREFIX/share/kforge/templates beside this library, else the source tree it was built from. */
const char *kforge_templates_dir(void);
/* The target names this context knows, comma-separated ("cpu-host, cpu-generic, ..."). */
const char *kforge_targets(kforge *kf);

/* Generates and loads a kernel: `tmpl` a template name or a .lua path; `shape` its params
** ("M=1,N=4096,K=4096"); `sets` tunables to pin ("passes=2,nr=32") or NULL; `target` a target
** name or NULL (cpu-host: the best this CPU runs); `emitter` 0 = LLVM ORC JIT, 1 = C compiler. */
int kforge_kernel_new(kforge *kf, const char *tmpl, const char *shape, const char *sets, const char *target,
                      int emitter, kforge_kernel **out);
void kforge_kernel_free(kforge_kernel *k);

/* The kernel's arguments, in the order kforge_kernel_run takes them. */
typedef struct kforge_arg {
  const char *name;
  const char *dtype;   /* "bf16", "f32", "i8", "u8", "i32", ... */
  int is_output;
  int rank;
  int64_t dims[4];     /* logical dims as the template declared them */
  int64_t n_elems;     /* elements of the buffer the kernel reads or writes (packed bytes for weights) */
  const char *layout;  /* "row", or "qweight" (kforge/quant.h kf_qweight packing) */
  int bits;            /* qweight: 8 or 4 */
  int64_t group;       /* qweight: K-group of the scales, as kf_qweight_quantize takes it (per
                       ** channel: K rounded up to a multiple of 8) */
  int packing;         /* qweight: kf_wlayout (0 = N16K4, 1 = N16K1) */
  int mxfp4;           /* qweight: MXFP4 codes */
} kforge_arg;
int kforge_kernel_n_args(const kforge_kernel *k);
int kforge_kernel_arg(const kforge_kernel *k, int i, kforge_arg *out);
/* The tunable values the kernel was built with ("mr=4,nr=32,passes=2") and its C name. */
const char *kforge_kernel_config(const kforge_kernel *k);
const char *kforge_kernel_name(const kforge_kernel *k);

/* Runs the kernel on args (one pointer per argument; outputs written). */
int kforge_kernel_run(kforge *kf, kforge_kernel *k, void *const *args);

/* Checks the kernel on random inputs against its fp64 reference: max |err|, the largest
** |err| / bound over the outputs (<= 1: within the bound derived from its arithmetic) and the
** effective bits log2(max|ref| / max|err|). KFORGE_ECHECK when over the bound. */
typedef struct kforge_check_result {
  double max_abs_err, rel_l2, max_err_over_bound, effective_bits;
} kforge_check_result;
int kforge_kernel_check(kforge *kf, kforge_kernel *k, uint64_t seed, kforge_check_result *out);

/* One stage of the kernel as text ("ir", "lir", "c", "ll", "s", "h"), malloc'ed into *text
** (the caller frees it). */
int kforge_kernel_emit(kforge *kf, const kforge_kernel *k, const char *kind, char **text);

#ifdef __cplusplus
}
#endif

#endif
