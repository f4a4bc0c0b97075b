/*
** kf_peers.h: the CPU GEMM peers kforge is measured against (DESIGN.md §8), timing y = W x for
** M×K activations x and N×K weights W with f32 outputs:
**
**   dnnl_bf16   oneDNN matmul, bf16 A (M×K) × bf16 B (W as K×N) → f32 C; B reordered once into
**               the layout the implementation asks for (format_tag any).
**   dnnl_u8s8   oneDNN matmul, u8 A × s8 B → f32 C: activations quantized per tensor
**               (s_x = max|x|/127, u = round(x/s_x) + 128, src zero point 128), per-output-channel
**               output scales s_x·s_w[n] given at primitive creation (oneDNN 2.6 runs its brgemm
**               VNNI kernel only with such static scales; runtime scales fall back to gemm:jit).
**               B reordered once. The activation quantization (O(M·K)) is done before timing;
**               the timed call is the matmul primitive.
**   blas_deq    OpenBLAS: dequantize the int8 weights (w = code·s_w[n] in f32, into an N×K f32
**               buffer, using `threads` pthreads) then cblas_sgemm — both timed: the dequant
**               baseline a user would write.
**
** All peers share one set of weights: int8 codes N×K with per-output-channel f32 scales (W8);
** the bf16 peer reads bf16(code·s_w). Threads: oneDNN in Debian 12 (2.6.3) is built with the
** OpenMP runtime (DNNL_CPU_RUNTIME = OMP, libgomp), so `threads` goes to omp_set_num_threads on
** the calling thread; OpenBLAS (Debian's openblas-pthread) gets openblas_set_num_threads.
*/
#ifndef KF_PEERS_H
#define KF_PEERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct kf_peer kf_peer;

typedef struct {
  char name[48];
  double median_s, min_s, p10_s, p90_s;
  int n_runs;
  int ok;          /* 1 when timed; 0: not available or failed (see note) */
  char note[160];  /* implementation name, copies in the cold set, or the error */
  int64_t weight_bytes; /* bytes of weights one call reads as the peer stores them (packed) */
  int n_copies;         /* weight copies in the rotating set (1 when warm) */
} kf_peer_result;

/* Times every peer on one shape with random data (fixed seed), after checking 64 sampled outputs
** of a first run against an fp64 reference within the peer's error bound (a wrong peer is
** reported with ok = 0, never timed). cold = 1 uses a rotating set of
** weight copies ≥ 2× the LLC. budget_s: timing budget per peer (≤ 0: 1 s). Returns the number of
** results written (≤ max_out; failed peers are written too, with ok = 0), or -1 for a bad shape
** (M, N, K ≤ 0, threads < 1), with out[0].note saying why when max_out ≥ 1. */
int kf_peers_gemm(int64_t M, int64_t N, int64_t K, int threads, int cold, double budget_s,
                  kf_peer_result *out, int max_out);

/* The peers for an interleaved timing loop (kf_bench_interleave): creates every peer on one
** shape with the data kf_peers_gemm uses and checks its sampled outputs; peers[i] is NULL when
** peer i is unavailable or wrong (info[i].note says why; info[i].name is always set). Returns the
** number of peers (KF_PEER_N entries are written), or -1 for a bad shape (info[0].note). Run
** with kf_peer_run, free with kf_peer_destroy. */
int kf_peers_create_all(int64_t M, int64_t N, int64_t K, int threads, int cold,
                        kf_peer **peers, kf_peer_result *info);

/* A short description of the peers' libraries (versions, oneDNN ISA, OpenBLAS config). */
void kf_peers_describe(char *buf, size_t len);

/* ---------------------------------------------------------------------------------------------
** Lower level: one prepared peer, for checking its output (bench/test_peers.c) and for
** callers that want their own timing loop.
*/
typedef enum kf_peer_kind {
  KF_PEER_DNNL_BF16 = 0,
  KF_PEER_DNNL_U8S8,
  KF_PEER_BLAS_DEQ,
  KF_PEER_N
} kf_peer_kind;

const char *kf_peer_name(kf_peer_kind kind);

/* Prepares a peer: copies/packs the weights (wq N×K int8 codes, w_scale N f32 per-channel
** scales) once, into n_copies distinct copies when cold (≥ 2× LLC, see kf_bench_rot), and the
** activations x (M×K, bf16-representable float values; converted / quantized here, untimed).
** Returns NULL with a message in err on failure (library error, no memory). */
kf_peer *kf_peer_create(kf_peer_kind kind, int64_t M, int64_t N, int64_t K, const int8_t *wq,
                        const float *w_scale, const float *x, int threads, int cold,
                        char *err, size_t err_len);
/* Runs one call y = W x reading weight copy iter % n_copies; 0 on success, else -1 with a
** message in err. y is M×N f32 and stays valid until the next run / destroy. */
int kf_peer_run(kf_peer *peer, int64_t iter, char *err, size_t err_len);
const float *kf_peer_y(const kf_peer *peer);
int kf_peer_n_copies(const kf_peer *peer);
int64_t kf_peer_weight_bytes(const kf_peer *peer);
/* Implementation detail for the report (e.g. oneDNN's impl name "brg:avx512_core_bf16"). */
const char *kf_peer_impl(const kf_peer *peer);
void kf_peer_destroy(kf_peer *peer);

/* The operand rules the peers use, exposed so tests can build the exact reference:
** bf16 weight = bf16_round((float)code * scale) (f32 multiply, then RNE to bf16);
** u8 activations: s_x = max|x| / 127 (f32; 1 when x is all zero), u = clamp(lrintf(x / s_x),
** -127, 127) + 128; returns s_x. */
float kf_peer_bf16_weight(int8_t code, float scale);
float kf_peer_quantize_u8(const float *x, int64_t n, uint8_t *u);

#endif
