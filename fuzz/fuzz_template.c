/*
** fuzz_template.c: the template front end and the verifier under libFuzzer.
**
** The input bytes drive a small grammar that writes a template: buffers of random dtype,
** rank, dims and level; up to three nested loops with random bounds, steps, min() caps and
** parallel flags; and random kf.* op calls (every op of the table) whose operands are
** buffers or tiles with random index expressions (loop variables times constants plus
** constants, the constants drawn from a table that includes 0, -1, 2^31, 2^61, 2^62 and
** the int64 extremes), random attributes and now and then a missing or unknown field.
** The template is loaded, built twice on one Lua state (a handle kept across builds in
** an upvalue) and verified; an accepted kernel is printed. Any crash, sanitizer report or
** leak is a finding. An input starting with 0xFF is raw Lua source for the sandbox.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

typedef struct rd {
  const uint8_t *p;
  size_t n;
} rd;

static unsigned next(rd *r, unsigned mod) {
  if (!r->n || !mod) return 0;
  unsigned v = *r->p++;
  r->n--;
  return v % mod;
}

static const char *const consts[] = {"0", "1", "2", "3", "4", "7", "8", "16", "32", "-1", "-16", "64", "100",
                                     "(1 << 31)", "(1 << 40)", "(1 << 61)", "(1 << 62)", "math.maxinteger",
                                     "math.mininteger", "6148914691236517206", "(math.maxinteger // 2)", "1e300",
                                     "0.5"};
#define N_CONSTS (sizeof consts / sizeof consts[0])
static const char *const small[] = {"1", "2", "3", "4", "8", "16", "32", "64", "5", "17"};
#define N_SMALL (sizeof small / sizeof small[0])
static const char *const dtypes[] = {"f32", "i32", "bf16", "i8", "u8", "f64", "i16"};
static const char *const attrs[] = {"passes", "act_group", "sum_group", "format", "round_bf16", "offset",
                                    "amla", "p_bf16", "mr", "guard", "value", "scale", "factor", "len", "bogus"};

#define MAX_BUFS 8
typedef struct gen {
  rd r;
  kf_str s;
  int n_bufs, rank[MAX_BUFS], depth;
} gen;

static const char *cst(gen *g) { return g->r.n && next(&g->r, 4) ? small[next(&g->r, N_SMALL)] : consts[next(&g->r, N_CONSTS)]; }

/* an index expression over the loop variables in scope */
static void ix(gen *g) {
  unsigned kind = next(&g->r, 6);
  if (!g->depth || kind == 0) {
    kf_str_puts(&g->s, next(&g->r, 4) ? "0" : cst(g));
    return;
  }
  int v = (int)next(&g->r, (unsigned)g->depth);
  if (kind == 1) kf_str_printf(&g->s, "v%d", v);
  else if (kind == 2) kf_str_printf(&g->s, "(v%d * %s + %s)", v, cst(g), cst(g));
  else if (kind == 3) kf_str_printf(&g->s, "kf.min(v%d + %s, %s)", v, cst(g), cst(g));
  else if (kind == 4) kf_str_printf(&g->s, "(v%d - v%d + %s)", v, (int)next(&g->r, (unsigned)g->depth), cst(g));
  else kf_str_printf(&g->s, "((v%d + %s) + %s)", v, cst(g), cst(g));
}

/* an operand: a buffer, a tile of one, a number or a kept handle */
static void operand(gen *g) {
  unsigned kind = next(&g->r, 8);
  int b = (int)next(&g->r, (unsigned)g->n_bufs);
  if (kind == 0) {
    kf_str_puts(&g->s, next(&g->r, 2) ? "kept" : "3");
    return;
  }
  if (kind < 4) {
    kf_str_printf(&g->s, "b%d", b);
    return;
  }
  int rank = next(&g->r, 8) ? g->rank[b] : (int)next(&g->r, 5);
  kf_str_printf(&g->s, "b%d:tile({", b);
  for (int d = 0; d < rank; d++) {
    if (d) kf_str_puts(&g->s, ", ");
    ix(g);
  }
  kf_str_puts(&g->s, "}, {");
  for (int d = 0; d < rank; d++) kf_str_printf(&g->s, "%s%s", d ? ", " : "", next(&g->r, 6) ? small[next(&g->r, N_SMALL)] : cst(g));
  kf_str_puts(&g->s, "})");
}

/* a call of a random op: mostly its own fields (from the op table), now and then a missing
** operand, an unknown field or a value of the wrong kind */
static void op_call(gen *g) {
  int op = KF_OP_LOOP + 1 + (int)next(&g->r, KF_OP_N_OPS - KF_OP_LOOP - 1);
  const kf_op_def *d = kf_op_get(op);
  kf_str_printf(&g->s, "%*skf.%s{ ", 2 * g->depth + 4, "", d->name);
  for (int r = 0; r < d->n_roles; r++)
    if (next(&g->r, 16) || !g->r.n) {
      kf_str_printf(&g->s, "%s = ", d->roles[r].name);
      operand(g);
      kf_str_puts(&g->s, ", ");
    }
  for (int a = 0; a < d->n_attrs; a++)
    if (next(&g->r, 2)) {
      unsigned k = next(&g->r, 8);
      kf_str_printf(&g->s, "%s = ", d->attrs[a].name);
      if (d->attrs[a].kind == KF_ATTR_STR) kf_str_puts(&g->s, k ? (k & 1 ? "\"mxfp4\"" : "\"int8\"") : "\"fp8\"");
      else if (k == 0) kf_str_puts(&g->s, cst(g));
      else if (k == 1) kf_str_puts(&g->s, "true");
      else kf_str_printf(&g->s, "%u", next(&g->r, 5));
      kf_str_puts(&g->s, ", ");
    }
  if (d->num_name && next(&g->r, 4)) kf_str_printf(&g->s, "%s = %s, ", d->num_name, next(&g->r, 2) ? "0.25" : cst(g));
  if ((d->flags & KF_OPF_LEN) && next(&g->r, 16)) {
    kf_str_puts(&g->s, "len = ");
    ix(g);
    kf_str_puts(&g->s, ", ");
  }
  if (!next(&g->r, 32)) {
    kf_str_printf(&g->s, "%s = ", attrs[next(&g->r, sizeof attrs / sizeof attrs[0])]);
    operand(g);
    kf_str_puts(&g->s, ", ");
  }
  kf_str_puts(&g->s, "}\n");
}

static void body(gen *g, int n_items) {
  for (int i = 0; i < n_items && g->r.n; i++) {
    if (g->depth < 3 && next(&g->r, 4) == 0) {
      int v = g->depth;
      kf_str_printf(&g->s, "%*skf.loop(\"v%d\", ", 2 * g->depth + 4, "", v);
      ix(g);
      kf_str_puts(&g->s, ", ");
      ix(g);
      kf_str_printf(&g->s, ", %s, function(v%d)\n", next(&g->r, 3) ? small[next(&g->r, N_SMALL)] : cst(g), v);
      g->depth++;
      body(g, 1 + (int)next(&g->r, 4));
      g->depth--;
      kf_str_printf(&g->s, "%*send%s)\n", 2 * g->depth + 4, "", next(&g->r, 3) ? "" : ", { parallel = true }");
    } else
      op_call(g);
  }
}

static void gen_template(gen *g) {
  kf_str_puts(&g->s, "local kept\nreturn { name = \"fz\", params = { case = { default = 0, min = 0 } },\n"
                     "  build = function(p)\n");
  g->n_bufs = 1 + (int)next(&g->r, MAX_BUFS);
  for (int b = 0; b < g->n_bufs; b++) {
    static const char *const kinds[] = {"arg", "scratch", "reg"};
    const char *kind = kinds[next(&g->r, 3)];
    int rank = 1 + (int)next(&g->r, 3);
    if (!strcmp(kind, "reg") && next(&g->r, 4)) rank = 2;
    g->rank[b] = rank;
    /* mostly the dtypes the ops take (register tiles: f32 or i32), now and then any */
    unsigned dt = next(&g->r, 8);
    const char *dtype = dt < 6 ? (dt & 1 ? "i32" : "f32") : dtypes[next(&g->r, sizeof dtypes / sizeof dtypes[0])];
    if (strcmp(kind, "reg") && dt == 2) dtype = "bf16";
    kf_str_printf(&g->s, "    local b%d = kf.%s{ name = \"b%d\", dtype = \"%s\", dims = { ", b, kind, b, dtype);
    for (int d = 0; d < rank; d++) kf_str_printf(&g->s, "%s%s", d ? ", " : "", next(&g->r, 5) ? small[next(&g->r, N_SMALL)] : cst(g));
    kf_str_puts(&g->s, " }");
    unsigned extra = next(&g->r, 6);
    if (extra == 1) kf_str_puts(&g->s, ", out = true");
    if (extra == 2 && rank > 1) kf_str_printf(&g->s, ", layout = \"qweight\", bits = %d, pack = \"%s\"", next(&g->r, 2) ? 8 : 4, next(&g->r, 2) ? "n16k1" : "n16k4");
    kf_str_puts(&g->s, " }\n");
  }
  body(g, 1 + (int)next(&g->r, 6));
  kf_str_puts(&g->s, "    if p.case == 0 then kept = b0 end\n  end }\n");
}

static void run(const char *src, size_t len) {
  kf_ctx ctx;
  kf_ctx_init(&ctx);
  kf_template *t = NULL;
  if (kf_template_load_source(&ctx, "fuzz.lua", src, len, &t)) return;
  for (int c = 0; c < 2; c++) { /* the second build sees the first one's kept handle */
    kf_binding shape, params, sets, config;
    memset(&shape, 0, sizeof shape);
    memset(&sets, 0, sizeof sets);
    kf_binding_set(&shape, "case", c);
    kf_ir_kernel *ir = NULL;
    if (!kf_template_shape(&ctx, t, &shape, &params) && !kf_template_config(&ctx, t, &params, &sets, &config) &&
        !kf_template_build(&ctx, t, &params, &config, &ir)) {
      kf_str out = {0};
      kf_ir_print(ir, &out);
      kf_str_free(&out);
    }
    kf_ir_free(ir);
  }
  kf_template_free(t);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  setenv("KFORGE_TEMPLATE_TIME", "0.2", 1); /* raw Lua inputs: short budgets */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size && data[0] == 0xFF) {
    run((const char *)data + 1, size - 1);
    return 0;
  }
  gen g;
  memset(&g, 0, sizeof g);
  g.r.p = data;
  g.r.n = size;
  gen_template(&g);
  if (getenv("KF_FUZZ_PRINT")) fprintf(stderr, "%s\n", g.s.data);
  run(g.s.data, g.s.len);
  kf_str_free(&g.s);
  return 0;
}
