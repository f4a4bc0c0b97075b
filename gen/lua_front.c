/*
** lua_front.c: runs templates in a sandboxed Lua 5.4 state and exposes the IR builder
** to them as the global table `kf`.
**
** Sandbox: only the base (minus load/loadfile/dofile/require/collectgarbage's control),
** string, table, math and utf8 libraries; chunks are loaded as text only (mode "t");
** a count hook stops runaway scripts; a counting allocator caps memory. Every call into
** Lua is a lua_pcall with a traceback message handler (never lua_call).
*/
#define _GNU_SOURCE 1 /* dladdr */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "template.h"

#define KF_LUA_MEM_LIMIT (256u << 20)     /* bytes */
#define KF_LUA_OBJ_LIMIT (4u << 20)       /* bytes of one allocation (a string, a table's part) */
#define KF_LUA_INSN_LIMIT 200000000LL     /* VM instructions per call */
#define KF_LUA_HOOK_EVERY 1000
#define KF_LUA_TIME_LIMIT 10.0            /* seconds of wall clock per call into the template */
#define KF_LUA_SEARCH_TIME_LIMIT 30.0     /* seconds for all constraint calls of one config search */
#define KF_LUA_REP_LIMIT (1u << 20)       /* bytes of a string.rep result */
#define KF_LUA_FILE_LIMIT (1u << 20)      /* bytes of a template file */

/* Why a call was stopped (kf_template.killed): such a stop cannot be caught by the
** template (the sandbox's pcall/xpcall re-raise it, the hook raises again). */
enum { KF_KILL_NONE, KF_KILL_INSNS, KF_KILL_TIME };

struct kf_template {
  lua_State *L;
  size_t mem_used;
  long long insns;
  int killed;               /* KF_KILL_*, for the current call */
  double deadline;          /* kf_now() limit of the current call */
  double search_deadline;   /* 0, or the limit of the running config search */
  double time_limit, search_time_limit; /* seconds (KF_LUA_*TIME_LIMIT, or KFORGE_TEMPLATE_TIME) */
  size_t alloc_since_check; /* bytes allocated since the allocator last read the clock */
  char *path, *name, *doc, *reference;
  char hash[17];
  int ref_table; /* registry ref to the returned table */
  int n_params, n_tunables, n_key;
  kf_tparam params[KF_MAX_BIND], tunables[KF_MAX_BIND];
  kf_template_lib lib; /* the `lib = {...}` declaration */
  char key[KF_MAX_KEY][32]; /* params named in a kernel's function name */
  char target_name[48];
  int target_vl, target_vnni, target_bf16, target_regs;
  /* during build */
  kf_ir_kernel *ir;
  kf_ir_block *cur;
  int building;
  unsigned serial; /* of the current (or last) build() */
  size_t printed;  /* bytes the template printed (to stderr) */
};

/* ---------------------------------------------------------------- bindings */

int kf_binding_get(const kf_binding *b, const char *name, int64_t *out) {
  for (int i = 0; i < b->n; i++)
    if (!strcmp(b->name[i], name)) {
      if (out) *out = b->val[i];
      return 1;
    }
  return 0;
}

int kf_binding_set(kf_binding *b, const char *name, int64_t v) {
  for (int i = 0; i < b->n; i++)
    if (!strcmp(b->name[i], name)) {
      b->val[i] = v;
      return KF_OK;
    }
  if (b->n == KF_MAX_BIND || strlen(name) >= sizeof b->name[0]) return KF_EINVAL;
  snprintf(b->name[b->n], sizeof b->name[0], "%s", name);
  b->val[b->n++] = v;
  return KF_OK;
}

void kf_binding_format(const kf_binding *b, kf_str *out) {
  for (int i = 0; i < b->n; i++)
    kf_str_printf(out, "%s%s=%lld", i ? "," : "", b->name[i], (long long)b->val[i]);
  if (!b->n && !out->data) kf_str_puts(out, "");
}

int kf_binding_parse(kf_ctx *ctx, const char *text, const char *what, kf_binding *out) {
  const char *p = text;
  while (*p) {
    const char *eq = strchr(p, '=');
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    if (!eq || eq > end || eq == p)
      return kf_err(ctx, KF_EINVAL, "%s '%s': expected NAME=VALUE at '%.*s'", what, text,
                    (int)(end - p), p);
    char name[64];
    if ((size_t)(eq - p) >= 32)
      return kf_err(ctx, KF_EINVAL, "%s '%s': name too long at '%.*s'", what, text,
                    (int)(eq - p), p);
    memcpy(name, p, (size_t)(eq - p));
    name[eq - p] = 0;
    for (const char *c = name; *c; c++)
      if (!(*c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
            (c > name && *c >= '0' && *c <= '9')))
        return kf_err(ctx, KF_EINVAL, "%s '%s': '%s' is not a valid name", what, text, name);
    char num[64];
    size_t nl = (size_t)(end - eq - 1);
    if (nl == 0 || nl >= sizeof num)
      return kf_err(ctx, KF_EINVAL, "%s '%s': missing or too long value for %s", what, text, name);
    memcpy(num, eq + 1, nl);
    num[nl] = 0;
    char *stop;
    long long v = strtoll(num, &stop, 10);
    if (*stop)
      return kf_err(ctx, KF_EINVAL, "%s '%s': value of %s is not an integer: '%s'", what, text,
                    name, num);
    if (kf_binding_get(out, name, NULL))
      return kf_err(ctx, KF_EINVAL, "%s '%s': %s given twice", what, text, name);
    if (kf_binding_set(out, name, v))
      return kf_err(ctx, KF_EINVAL, "%s '%s': too many values", what, text);
    p = *end ? end + 1 : end;
  }
  return KF_OK;
}

/* ---------------------------------------------------------------- sandbox */

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  kf_template *t = ud;
  if (!ptr) osize = 0;
  if (nsize == 0) {
    free(ptr);
    t->mem_used -= osize;
    return NULL;
  }
  if (nsize > osize) {
    if (t->mem_used + (nsize - osize) > KF_LUA_MEM_LIMIT || nsize > KF_LUA_OBJ_LIMIT) return NULL;
    /* allocation-heavy C work (concatenation, table.concat, string.upper, ...) runs between
    ** the hook's checks: the clock is read every 16 MB allocated */
    t->alloc_since_check += nsize - osize;
    if (t->alloc_since_check > (16u << 20)) {
      t->alloc_since_check = 0;
      if (t->deadline > 0 && kf_now() > t->deadline) {
        t->killed = KF_KILL_TIME;
        return NULL;
      }
    }
  }
  void *p = realloc(ptr, nsize);
  if (p) t->mem_used += nsize - osize;
  return p;
}

static void count_hook(lua_State *L, lua_Debug *ar) {
  kf_template *t = *(kf_template **)lua_getextraspace(L);
  t->insns += KF_LUA_HOOK_EVERY;
  if (!t->killed && t->insns > KF_LUA_INSN_LIMIT) t->killed = KF_KILL_INSNS;
  if (!t->killed && t->deadline > 0 && kf_now() > t->deadline) t->killed = KF_KILL_TIME;
  if (t->killed == KF_KILL_TIME)
    luaL_error(L, "%s: time limit exceeded (%g s for one call into the template, %g s for a "
               "configuration search)", t->path, t->time_limit, t->search_time_limit);
  if (t->killed == KF_KILL_INSNS) {
    /* name the line that was running, as a Lua error from that line would */
    const char *src = "?";
    int line = 0;
    if (lua_getinfo(L, "Sl", ar)) {
      src = ar->short_src;
      line = ar->currentline;
    }
    luaL_error(L, "%s:%d: instruction limit exceeded (%d million VM instructions): infinite loop?", src, line,
               (int)(KF_LUA_INSN_LIMIT / 1000000));
  }
}

static int msg_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Calls the function below nargs arguments on the stack; on error, copies the first
** line of the message (file:line: text) and the traceback to ctx. */
static int pcall(kf_ctx *ctx, kf_template *t, int nargs, int nres, const char *what) {
  lua_State *L = t->L;
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, msg_handler);
  lua_insert(L, base);
  if (t->search_deadline > 0 && kf_now() > t->search_deadline) {
    lua_pop(L, nargs + 2);
    return kf_err(ctx, KF_EINVAL, "%s: time limit exceeded (%g s for a configuration search) (in %s)", t->path,
                  t->search_time_limit, what);
  }
  t->insns = 0;
  t->killed = KF_KILL_NONE;
  t->alloc_since_check = 0;
  t->deadline = kf_now() + t->time_limit;
  if (t->search_deadline > 0 && t->search_deadline < t->deadline) t->deadline = t->search_deadline;
  int rc = lua_pcall(L, nargs, nres, base);
  t->deadline = 0;
  lua_remove(L, base);
  if (rc == LUA_OK) return KF_OK;
  const char *msg = lua_tostring(L, -1);
  char first[1024];
  snprintf(first, sizeof first, "%s", msg ? msg : "error");
  char *nl = strchr(first, '\n');
  if (nl) *nl = 0;
  if (rc == LUA_ERRMEM)
    snprintf(first, sizeof first, "%s: memory limit exceeded (%u MB in all, %u MB for one string or table)", t->path,
             KF_LUA_MEM_LIMIT >> 20, KF_LUA_OBJ_LIMIT >> 20);
  if (t->killed == KF_KILL_TIME)
    snprintf(first, sizeof first, "%s: time limit exceeded (%g s for one call into the template, %g s for a "
             "configuration search)", t->path, t->time_limit, t->search_time_limit);
  if (ctx->verbose && msg) fprintf(stderr, "%s\n", msg);
  lua_pop(L, 1);
  return kf_err(ctx, KF_EINVAL, "%s (in %s)", first, what);
}

/* print and warn: the template has no channel into kforge's stdout (which carries generated
** C and headers): its text goes to stderr, each line prefixed "template: FILE: ", at most
** KF_LUA_PRINT_MAX bytes per template (issue 15, fault 1). */
#define KF_LUA_PRINT_MAX (64u << 10)
static int l_print(lua_State *L) {
  kf_template *t = *(kf_template **)lua_getextraspace(L);
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (lua_toboolean(L, lua_upvalueindex(1))) luaL_addstring(&b, "warning: ");
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  size_t len;
  const char *text = lua_tolstring(L, -1, &len);
  if (t->printed >= KF_LUA_PRINT_MAX) return 0;
  if (len > KF_LUA_PRINT_MAX - t->printed) len = KF_LUA_PRINT_MAX - t->printed;
  t->printed += len;
  fprintf(stderr, "template: %s: ", t->path);
  for (size_t i = 0; i < len; i++) {
    fputc(text[i], stderr);
    if (text[i] == '\n' && i + 1 < len) fprintf(stderr, "template: %s: ", t->path);
  }
  fputc('\n', stderr);
  if (t->printed >= KF_LUA_PRINT_MAX) fprintf(stderr, "template: %s: (further output dropped)\n", t->path);
  return 0;
}

/* pcall and xpcall of the sandbox: as Lua's, but a stop by the instruction or time limit
** propagates (issue 15, fault 5: the limit could be caught and the work retried). */
static int sb_pcall(lua_State *L) {
  kf_template *t = *(kf_template **)lua_getextraspace(L);
  int is_x = lua_toboolean(L, lua_upvalueindex(1));
  luaL_checkany(L, 1);
  if (is_x) {
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2); /* f, msgh, args -> msgh, f, args */
    lua_pushvalue(L, 1);
    lua_replace(L, 2);
    lua_replace(L, 1);
  }
  int status = lua_pcall(L, lua_gettop(L) - 1 - is_x, LUA_MULTRET, is_x);
  if (t->killed) return lua_error(L);
  lua_pushboolean(L, status == LUA_OK);
  if (is_x) lua_replace(L, 1); /* msgh, results -> status, results */
  else lua_insert(L, 1);
  return lua_gettop(L);
}

/* string.rep with a result of at most KF_LUA_REP_LIMIT bytes. */
static int sb_rep(lua_State *L) {
  size_t len, lsep;
  luaL_checklstring(L, 1, &len);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  size_t total;
  if (n > 0 && (__builtin_mul_overflow(len, (size_t)n, &total) ||
                __builtin_add_overflow(total, lsep * (size_t)(n - 1 < 1 << 30 ? n - 1 : 1 << 30), &total) ||
                total > KF_LUA_REP_LIMIT))
    return luaL_error(L, "string.rep: the result would be more than %d bytes", (int)KF_LUA_REP_LIMIT);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

#define LIBS_KEY "kforge.libs"
static int l_require(lua_State *L);
static int read_template_file(kf_ctx *ctx, const char *path, char **out, size_t *out_len);

static void open_sandbox_libs(lua_State *L) {
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},     {LUA_TABLIBNAME, luaopen_table},
                                  {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
                                  {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}};
  for (const luaL_Reg *lib = libs; lib->func; lib++) {
    luaL_requiref(L, lib->name, lib->func, 1);
    lua_pop(L, 1);
  }
  static const char *const banned[] = {"dofile", "loadfile", "load", "require", "collectgarbage",
                                       "rawequal", "rawset", "rawget", "rawlen", NULL};
  for (int i = 0; banned[i]; i++) {
    lua_pushnil(L);
    lua_setglobal(L, banned[i]);
  }
  for (int is_warn = 0; is_warn < 2; is_warn++) {
    lua_pushboolean(L, is_warn);
    lua_pushcclosure(L, l_print, 1);
    lua_setglobal(L, is_warn ? "warn" : "print");
  }
  for (int is_x = 0; is_x < 2; is_x++) {
    lua_pushboolean(L, is_x);
    lua_pushcclosure(L, sb_pcall, 1);
    lua_setglobal(L, is_x ? "xpcall" : "pcall");
  }
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, LIBS_KEY);
  lua_register(L, "require", l_require);
  /* string.dump would expose bytecode; the pattern functions can backtrack for ever inside
  ** one C call (no hook runs there): removed. string.rep is bounded. */
  lua_getglobal(L, "string");
  static const char *const str_banned[] = {"dump", "find", "match", "gmatch", "gsub", NULL};
  for (int i = 0; str_banned[i]; i++) {
    lua_pushnil(L);
    lua_setfield(L, -2, str_banned[i]);
  }
  lua_getfield(L, -1, "rep");
  lua_pushcclosure(L, sb_rep, 1);
  lua_setfield(L, -2, "rep");
  lua_pop(L, 1);
}

/* require(NAME): the template library, templates/lib/NAME.lua of the template directory and
** nothing else (NAME: a lower-case identifier, no path). Each module runs once per template
** (text chunks only, in the same sandbox and limits) and its value is cached. */
static int l_require(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  size_t n = strlen(name);
  int ok = n > 0 && n <= 32 && name[0] >= 'a' && name[0] <= 'z';
  for (size_t i = 0; ok && i < n; i++)
    ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_';
  if (!ok) return luaL_error(L, "require: '%s' is not a template library name (lower-case letters, digits, _)", name);
  lua_getfield(L, LUA_REGISTRYINDEX, LIBS_KEY);
  lua_getfield(L, -1, name);
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);
  char path[4400];
  snprintf(path, sizeof path, "%s/lib/%s.lua", kf_template_dir(), name);
  kf_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  char *src;
  size_t len;
  if (read_template_file(&ctx, path, &src, &len)) return luaL_error(L, "require: no template library '%s' (%s)", name, kf_errmsg(&ctx));
  char chunk[4500];
  snprintf(chunk, sizeof chunk, "@%s", path);
  int lrc = luaL_loadbufferx(L, src, len, chunk, "t");
  free(src);
  if (lrc != LUA_OK) return lua_error(L);
  lua_call(L, 0, 1); /* inside the template's own protected call: errors reach its handler */
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, name);
  return 1;
}

/* ---------------------------------------------------------------- builder: helpers */

#define IX_MT "kforge.ix"
#define BUF_MT "kforge.buf"
#define TILE_MT "kforge.tile"

/* Builder handles carry the build they belong to (kf_template.serial): a handle kept in a
** template upvalue from an earlier build() refers to another kernel's buffers and loop
** variables, and using it is an error (issue 15, fault 4). */
typedef struct lbuf {
  int id;
  unsigned serial;
} lbuf;
typedef struct lix {
  kf_ix x;
  unsigned serial;
} lix;
typedef struct ltile {
  kf_tile t;
  unsigned serial;
} ltile;

static kf_template *tmpl_of(lua_State *L) { return *(kf_template **)lua_getextraspace(L); }

static kf_template *building(lua_State *L) {
  kf_template *t = tmpl_of(L);
  if (!t->building || !t->ir) luaL_error(L, "kf builder functions can only be used inside build()");
  return t;
}

static kf_loc caller_loc(lua_State *L) {
  kf_template *t = tmpl_of(L);
  kf_loc loc = {t->path, 0};
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0) {
      loc.line = ar.currentline;
      break;
    }
  }
  return loc;
}

static void push_ix(lua_State *L, kf_ix x) {
  lix *p = lua_newuserdatauv(L, sizeof *p, 0);
  p->x = x;
  p->serial = tmpl_of(L)->serial;
  luaL_setmetatable(L, IX_MT);
}

/* Errors if a handle of build `serial` is used outside that build. */
static void check_serial(lua_State *L, unsigned serial, const char *what) {
  kf_template *t = tmpl_of(L);
  if (!t->building || serial != t->serial)
    luaL_error(L, "%s from an earlier build() (kept in a variable across builds); handles are valid only "
               "in the build() call that made them", what);
}

/* Converts a Lua integer or ix userdata to kf_ix. */
static kf_ix check_ix(lua_State *L, int idx) {
  if (lua_isinteger(L, idx)) return kf_ix_const(lua_tointeger(L, idx));
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Number v = lua_tonumber(L, idx);
    /* (the range test first: converting an out-of-range double to int64 is undefined) */
    if (!(v >= -0x1p63 && v < 0x1p63) || v != (lua_Number)(int64_t)v)
      luaL_error(L, "index %f is not an integer in the int64 range", v);
    return kf_ix_const((int64_t)v);
  }
  lix *p = luaL_testudata(L, idx, IX_MT);
  if (!p) luaL_error(L, "expected an integer or an index expression, got %s", luaL_typename(L, idx));
  if (!kf_ix_is_const(&p->x)) check_serial(L, p->serial, "an index expression");
  return p->x;
}

static int ix_overflow(lua_State *L, const char *what) {
  return luaL_error(L, "index expression overflows int64 (%s)", what);
}

static int ix_add(lua_State *L) {
  kf_ix r;
  int rc = kf_ix_add(&r, check_ix(L, 1), check_ix(L, 2));
  if (rc == KF_IX_OVERFLOW) return ix_overflow(L, "+");
  if (rc) return luaL_error(L, "index expression too complex (or adds to a capped min())");
  push_ix(L, r);
  return 1;
}

static int ix_sub(lua_State *L) {
  kf_ix r, b;
  int rc = kf_ix_scale(&b, check_ix(L, 2), -1);
  if (!rc) rc = kf_ix_add(&r, check_ix(L, 1), b);
  if (rc == KF_IX_OVERFLOW) return ix_overflow(L, "-");
  if (rc) return luaL_error(L, "index expression too complex (or subtracts a capped min())");
  push_ix(L, r);
  return 1;
}

static int ix_mul(lua_State *L) {
  kf_ix r;
  int ix_first = !lua_isnumber(L, 1);
  kf_ix a = check_ix(L, ix_first ? 1 : 2);
  kf_ix k = check_ix(L, ix_first ? 2 : 1);
  if (!kf_ix_is_const(&k)) return luaL_error(L, "index expressions are affine: multiply by an integer only");
  int rc = kf_ix_scale(&r, a, k.c);
  if (rc == KF_IX_OVERFLOW) return ix_overflow(L, "*");
  if (rc) return luaL_error(L, "cannot scale a capped min()");
  push_ix(L, r);
  return 1;
}

static int ix_tostring(lua_State *L) {
  kf_ix x = check_ix(L, 1);
  lua_pushfstring(L, "ix(c=%I, terms=%d)", (lua_Integer)x.c, x.n);
  return 1;
}

static int ix_unsupported(lua_State *L) {
  return luaL_error(L, "index expressions support +, - and * by an integer (use kf.min for caps)");
}

static int buf_id(lua_State *L, int idx) {
  lbuf *b = luaL_testudata(L, idx, BUF_MT);
  if (!b) luaL_error(L, "expected a buffer, got %s", luaL_typename(L, idx));
  check_serial(L, b->serial, "a buffer");
  return b->id;
}

static const kf_ir_buf *buf_of(lua_State *L, int id) { return &building(L)->ir->bufs.data[id]; }

/* A tile is a full userdata copy of kf_tile. A buffer in place of a tile means all of it. */
static kf_tile check_tile(lua_State *L, int idx, const char *what) {
  ltile *p = luaL_testudata(L, idx, TILE_MT);
  if (p) {
    check_serial(L, p->serial, "a tile");
    return p->t;
  }
  if (luaL_testudata(L, idx, BUF_MT)) {
    int id = buf_id(L, idx);
    const kf_ir_buf *b = buf_of(L, id);
    kf_tile t;
    memset(&t, 0, sizeof t);
    t.buf = id;
    t.rank = b->rank;
    for (int d = 0; d < b->rank; d++) {
      t.off[d] = kf_ix_const(0);
      t.ext[d] = b->dims[d];
    }
    return t;
  }
  luaL_error(L, "%s: expected a tile or buffer, got %s", what, luaL_typename(L, idx));
  kf_tile none;
  memset(&none, 0, sizeof none);
  return none;
}

/* buf:tile({offsets}, {extents}) */
static int buf_tile(lua_State *L) {
  int id = buf_id(L, 1);
  const kf_ir_buf *b = buf_of(L, id);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  if ((int)lua_rawlen(L, 2) != b->rank || (int)lua_rawlen(L, 3) != b->rank)
    return luaL_error(L, "tile of '%s' needs %d offsets and %d extents", b->name, b->rank, b->rank);
  ltile *lt = lua_newuserdatauv(L, sizeof *lt, 0);
  memset(lt, 0, sizeof *lt);
  lt->serial = tmpl_of(L)->serial;
  kf_tile *t = &lt->t;
  t->buf = id;
  t->rank = b->rank;
  for (int d = 0; d < b->rank; d++) {
    lua_geti(L, 2, d + 1);
    t->off[d] = check_ix(L, -1);
    lua_pop(L, 1);
    lua_geti(L, 3, d + 1);
    if (!lua_isinteger(L, -1))
      return luaL_error(L, "tile of '%s': extent %d must be an integer", b->name, d + 1);
    t->ext[d] = lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  luaL_setmetatable(L, TILE_MT);
  return 1;
}

static int buf_index(lua_State *L) {
  int id = buf_id(L, 1);
  const char *key = luaL_checkstring(L, 2);
  const kf_ir_buf *b = buf_of(L, id);
  if (!strcmp(key, "tile")) {
    lua_pushcfunction(L, buf_tile);
    return 1;
  }
  if (!strcmp(key, "name")) {
    lua_pushstring(L, b->name);
    return 1;
  }
  if (!strcmp(key, "dims")) {
    lua_createtable(L, b->rank, 0);
    for (int d = 0; d < b->rank; d++) {
      lua_pushinteger(L, b->dims[d]);
      lua_rawseti(L, -2, d + 1);
    }
    return 1;
  }
  return luaL_error(L, "buffer '%s' has no field '%s' (fields: tile, name, dims)", b->name, key);
}

/* ---------------------------------------------------------------- builder: kf.* */

static int opt_int(lua_State *L, int tbl, const char *key, int64_t def) {
  lua_getfield(L, tbl, key);
  int64_t v = def;
  if (!lua_isnil(L, -1)) {
    if (!lua_isinteger(L, -1)) luaL_error(L, "field '%s' must be an integer", key);
    v = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return (int)v;
}

static kf_scalar check_dtype(lua_State *L, const char *s) {
  for (int i = 0; i < KF_N_SCALAR; i++)
    if (!strcmp(s, kf_scalar_name((kf_scalar)i)) && i != KF_BOOL) return (kf_scalar)i;
  luaL_error(L, "unknown dtype '%s' (i8 u8 i16 u16 i32 u32 i64 f32 f64 bf16)", s);
  return KF_F32;
}

/* kf.arg{...} / kf.scratch{...} / kf.reg{...}: declare a buffer. */
static int new_buf(lua_State *L, kf_level level) {
  kf_template *t = building(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  kf_ir_buf b;
  memset(&b, 0, sizeof b);
  b.loc = caller_loc(L);
  b.level = level;
  lua_getfield(L, 1, "name");
  const char *name = lua_tostring(L, -1);
  if (!name) return luaL_error(L, "buffer needs a name");
  b.name = name;
  lua_getfield(L, 1, "dtype");
  const char *dt = lua_tostring(L, -1);
  if (!dt) return luaL_error(L, "buffer '%s' needs a dtype", name);
  b.dtype = check_dtype(L, dt);
  lua_getfield(L, 1, "dims");
  if (!lua_istable(L, -1)) return luaL_error(L, "buffer '%s' needs dims = {...}", name);
  b.rank = (int)lua_rawlen(L, -1);
  if (b.rank < 1 || b.rank > KF_IR_MAX_RANK)
    return luaL_error(L, "buffer '%s': rank %d (1..%d)", name, b.rank, KF_IR_MAX_RANK);
  for (int d = 0; d < b.rank; d++) {
    lua_geti(L, -1, d + 1);
    if (!lua_isinteger(L, -1)) return luaL_error(L, "buffer '%s': dim %d is not an integer", name, d + 1);
    b.dims[d] = lua_tointeger(L, -1);
    if (b.dims[d] <= 0) return luaL_error(L, "buffer '%s': dim %d is %I (dims must be >= 1)", name, d + 1, (lua_Integer)b.dims[d]);
    lua_pop(L, 1);
  }
  /* element counts and byte offsets must fit int64 with room to spare (2^48 elements) */
  double elems = 1;
  for (int d = 0; d < b.rank; d++) elems *= (double)b.dims[d];
  if (elems > 0x1p48) {
    char num[32];
    snprintf(num, sizeof num, "%.3g", elems);
    return luaL_error(L, "buffer '%s': %s elements is more than 2^48 (the shape is too large)", name, num);
  }
  if (level == KF_LVL_ARG_IN) {
    lua_getfield(L, 1, "out");
    if (lua_toboolean(L, -1)) b.level = KF_LVL_ARG_OUT;
    lua_pop(L, 1);
  }
  lua_getfield(L, 1, "layout");
  const char *layout = lua_tostring(L, -1);
  if (layout && strcmp(layout, "row")) {
    if (!strcmp(layout, "qweight")) b.layout = KF_LAYOUT_QW;
    else if (!strcmp(layout, "qscales")) b.layout = KF_LAYOUT_QS;
    else return luaL_error(L, "buffer '%s': unknown layout '%s' (row, qweight, qscales)", name, layout);
    if (b.rank != 2 && b.rank != 3)
      return luaL_error(L, "buffer '%s': quantized weights have dims {N, K} or {count, N, K}", name);
    b.wbits = opt_int(L, 1, "bits", 8);
    if (b.wbits != 4 && b.wbits != 8) return luaL_error(L, "buffer '%s': bits must be 4 or 8", name);
    lua_getfield(L, 1, "pack");
    const char *pack = lua_tostring(L, -1);
    b.wlayout = pack && !strcmp(pack, "n16k1") ? 1 : 0;
    if (pack && strcmp(pack, "n16k1") && strcmp(pack, "n16k4"))
      return luaL_error(L, "buffer '%s': pack must be n16k4 or n16k1", name);
    lua_pop(L, 1);
    b.wgroup = opt_int(L, 1, "group", 0);
    lua_getfield(L, 1, "format");
    const char *wf = lua_tostring(L, -1);
    if (wf && strcmp(wf, "int") && strcmp(wf, "mxfp4"))
      return luaL_error(L, "buffer '%s': format must be \"int\" or \"mxfp4\"", name);
    b.wmx = wf && !strcmp(wf, "mxfp4");
    lua_pop(L, 1);
    if (b.wgroup <= 0 || b.wgroup >= b.dims[b.rank - 1]) b.wgroup = b.dims[b.rank - 1];
  }
  int id = kf_ir_buf_add(t->ir, &b);
  lua_settop(L, 0);
  lbuf *ud = lua_newuserdatauv(L, sizeof *ud, 0);
  ud->id = id;
  ud->serial = t->serial;
  luaL_setmetatable(L, BUF_MT);
  return 1;
}

static int l_arg(lua_State *L) { return new_buf(L, KF_LVL_ARG_IN); }
static int l_scratch(lua_State *L) { return new_buf(L, KF_LVL_LOCAL); }
static int l_reg(lua_State *L) { return new_buf(L, KF_LVL_REG); }

/* kf.loop(name, lo, hi, step, function(i) ... end [, {parallel=true}]) */
static int l_loop(lua_State *L) {
  kf_template *t = building(L);
  const char *name = luaL_checkstring(L, 1);
  kf_ix lo = check_ix(L, 2), hi = check_ix(L, 3);
  lua_Integer step = luaL_checkinteger(L, 4);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  int parallel = 0;
  if (lua_istable(L, 6)) {
    lua_getfield(L, 6, "parallel");
    parallel = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (step <= 0) return luaL_error(L, "loop '%s': step must be positive, got %I", name, (lua_Integer)step);
  kf_loc loc = caller_loc(L);
  int var = kf_ir_var_add(t->ir, name, loc);
  kf_ir_node *n = kf_ir_append(t->ir, t->cur, KF_OP_LOOP, loc);
  n->var = var;
  n->lo = lo;
  n->hi = hi;
  n->step = step;
  n->parallel = parallel;
  kf_ir_block *saved = t->cur;
  t->cur = &n->body;
  lua_pushvalue(L, 5);
  push_ix(L, kf_ix_var(var));
  lua_call(L, 1, 0); /* errors propagate to the enclosing pcall */
  t->cur = saved;
  return 0;
}

/* kf.min(ix, cap) */
static int l_min(lua_State *L) {
  kf_ix a = check_ix(L, 1);
  lua_Integer cap = luaL_checkinteger(L, 2);
  if (kf_ix_is_const(&a)) {
    lua_pushinteger(L, a.c < cap ? a.c : cap);
    return 1;
  }
  if (a.cap != INT64_MAX && a.cap < cap) cap = a.cap;
  a.cap = cap;
  push_ix(L, a);
  return 1;
}

static kf_ir_node *new_op(lua_State *L, kf_ir_opkind op) {
  kf_template *t = building(L);
  return kf_ir_append(t->ir, t->cur, op, caller_loc(L));
}

static double opt_num(lua_State *L, int tbl, const char *key, double def) {
  lua_getfield(L, tbl, key);
  double v = def;
  if (!lua_isnil(L, -1)) {
    if (!lua_isnumber(L, -1)) luaL_error(L, "field '%s' must be a number", key);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static void field_len(lua_State *L, kf_ir_node *n) {
  lua_getfield(L, 1, "len");
  if (lua_isnil(L, -1)) luaL_error(L, "%s: missing field 'len' (valid keys of the block)", kf_ir_opname(n->op));
  n->len = check_ix(L, -1);
  lua_pop(L, 1);
}

/* One operand from field `key` of the table at 1 (a tile or a whole buffer); 0 if absent. */
static int field_tile(lua_State *L, kf_ir_node *n, int slot, const char *key) {
  lua_getfield(L, 1, key);
  int present = !lua_isnil(L, -1);
  if (present) n->t[slot] = check_tile(L, -1, key);
  lua_pop(L, 1);
  return present;
}

/* Lists an op's field names ("acc, a, b, ...") for error messages. */
static void field_names(const kf_op_def *d, char *buf, size_t n) {
  size_t u = 0;
  buf[0] = 0;
  for (int r = 0; r < d->n_roles && u < n; r++) u += (size_t)snprintf(buf + u, n - u, "%s%s", u ? ", " : "", d->roles[r].name);
  for (int a = 0; a < d->n_attrs && u < n; a++) u += (size_t)snprintf(buf + u, n - u, ", %s", d->attrs[a].name);
  if (d->num_name && u < n) u += (size_t)snprintf(buf + u, n - u, ", %s", d->num_name);
  if ((d->flags & KF_OPF_LEN) && u < n) snprintf(buf + u, n - u, ", len");
}

/* Is `key` one of op d's fields? */
static int is_field(const kf_op_def *d, const char *key) {
  for (int r = 0; r < d->n_roles; r++)
    if (!strcmp(d->roles[r].name, key)) return 1;
  for (int a = 0; a < d->n_attrs; a++)
    if (!strcmp(d->attrs[a].name, key)) return 1;
  if (d->num_name && !strcmp(d->num_name, key)) return 1;
  return (d->flags & KF_OPF_LEN) && !strcmp(key, "len");
}

/* An attribute's value from the field on the stack top (nil: its default). */
static int64_t attr_value(lua_State *L, const kf_op_def *d, const kf_op_attr *at) {
  if (lua_isnil(L, -1)) return at->def;
  if (at->kind == KF_ATTR_STR) {
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    char choice[64];
    for (int64_t i = 0; s && i <= at->max; i++)
      if (!strcmp(kf_op_choice(at, i, choice, sizeof choice), s)) return i;
    luaL_error(L, "%s: %s must be one of \"%s\" (separated by |), got %s", d->name, at->name, at->choices,
               s ? s : luaL_typename(L, -1));
  }
  if (lua_isboolean(L, -1)) return lua_toboolean(L, -1);
  if (!lua_isinteger(L, -1))
    luaL_error(L, "%s: field '%s' must be an integer%s, got %s", d->name, at->name,
               at->kind == KF_ATTR_BOOL ? " or boolean" : "", luaL_typename(L, -1));
  return lua_tointeger(L, -1);
}

/* kf.NAME{ role = tile, attr = value, ... } for every op of the table (ops.def). The
** positional form kf.NAME(tile, tile, ..., number) of the first operands and the number
** attribute is kept for old templates. Values are stored as given: the verifier checks
** them against the table (ranges, dtypes, ranks, relations) with this call's file:line. */
static int l_op(lua_State *L) {
  const kf_op_def *d = kf_op_get((int)lua_tointeger(L, lua_upvalueindex(1)));
  kf_ir_node *n = new_op(L, (kf_ir_opkind)lua_tointeger(L, lua_upvalueindex(1)));
  if (!lua_istable(L, 1)) { /* positional */
    int top = lua_gettop(L), r = 0;
    for (; r < d->n_roles && r < top && lua_type(L, r + 1) == LUA_TUSERDATA; r++)
      n->t[r] = check_tile(L, r + 1, d->roles[r].name);
    n->n_tiles = r;
    if (r < d->n_required)
      return luaL_error(L, "%s: expected a table kf.%s{ ... } (fields: %s)", d->name, d->name, d->roles[0].name);
    if (r < top) {
      if (!d->num_name || r + 1 != top || !lua_isnumber(L, top))
        return luaL_error(L, "%s: unexpected argument %d (%s); use kf.%s{ ... }", d->name, r + 1, luaL_typename(L, r + 1), d->name);
      n->f = lua_tonumber(L, top);
    } else if (d->num_name) {
      if (d->num_required) return luaL_error(L, "%s: missing %s", d->name, d->num_name);
      n->f = d->num_def;
    }
    for (int a = 0; a < d->n_attrs; a++) n->i[a] = d->attrs[a].def;
    return 0;
  }
  char names[256];
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING || !is_field(d, lua_tostring(L, -1))) {
      field_names(d, names, sizeof names);
      return luaL_error(L, "%s: unknown field %s%s%s (fields: %s)", d->name, lua_type(L, -1) == LUA_TSTRING ? "'" : "",
                        lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1),
                        lua_type(L, -1) == LUA_TSTRING ? "'" : "", names);
    }
  }
  int missing = -1;
  for (int r = 0; r < d->n_roles; r++) {
    int present = field_tile(L, n, r, d->roles[r].name);
    if (!present && !(d->roles[r].flags & KF_RF_OPT))
      return luaL_error(L, "%s: missing operand '%s' (a tile or buffer)", d->name, d->roles[r].name);
    if (present && missing >= 0)
      return luaL_error(L, "%s: '%s' is given without '%s'", d->name, d->roles[r].name, d->roles[missing].name);
    if (present) n->n_tiles = r + 1;
    else if (missing < 0) missing = r;
  }
  for (int a = 0; a < d->n_attrs; a++) {
    lua_getfield(L, 1, d->attrs[a].name);
    n->i[a] = attr_value(L, d, &d->attrs[a]);
    lua_pop(L, 1);
  }
  if (d->num_name) {
    if (d->num_required) {
      lua_getfield(L, 1, d->num_name);
      int given = !lua_isnil(L, -1);
      lua_pop(L, 1);
      if (!given) return luaL_error(L, "%s: missing field '%s' (a number)", d->name, d->num_name);
    }
    n->f = opt_num(L, 1, d->num_name, d->num_def);
  }
  if (d->flags & KF_OPF_LEN) field_len(L, n);
  return 0;
}

static const luaL_Reg kf_funcs[] = {{"arg", l_arg}, {"scratch", l_scratch}, {"reg", l_reg},
                                    {"loop", l_loop}, {"min", l_min},         {NULL, NULL}};

static void register_builder(lua_State *L) {
  luaL_newmetatable(L, IX_MT);
  static const luaL_Reg ix_meta[] = {{"__add", ix_add},         {"__sub", ix_sub},
                                     {"__mul", ix_mul},         {"__tostring", ix_tostring},
                                     {"__div", ix_unsupported}, {"__idiv", ix_unsupported},
                                     {"__mod", ix_unsupported}, {"__unm", ix_unsupported},
                                     {NULL, NULL}};
  luaL_setfuncs(L, ix_meta, 0);
  lua_pop(L, 1);
  luaL_newmetatable(L, BUF_MT);
  lua_pushcfunction(L, buf_index);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, TILE_MT);
  lua_pop(L, 1);
  luaL_newlib(L, kf_funcs);
  for (int op = KF_OP_LOOP + 1; op < KF_OP_N_OPS; op++) {
    lua_pushinteger(L, op);
    lua_pushcclosure(L, l_op, 1);
    lua_setfield(L, -2, kf_op_get(op)->name);
  }
  lua_setglobal(L, "kf");
}

/* ---------------------------------------------------------------- loading */

/* $KFORGE_TEMPLATES; else PREFIX/share/kforge/templates where PREFIX is the parent of the
** directory holding the code of this function (the kforge binary or libkforge: bin/ or lib/,
** lib/<multiarch>/ too), when it exists; else the source tree of the build (a build tree).
** Computed once per process: the answer cannot change while it runs. */
static pthread_once_t tdir_once = PTHREAD_ONCE_INIT;
static char tdir[4200];

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void find_template_dir(void) {
  snprintf(tdir, sizeof tdir, "%s/templates", KF_SOURCE_DIR);
  Dl_info info;
  char self[4096];
  if (!dladdr((void *)find_template_dir, &info) || !info.dli_fname || !realpath(info.dli_fname, self)) return;
  for (int up = 0; up < 3; up++) { /* bin/kforge, lib/libkforge.so, lib/x86_64-linux-gnu/libkforge.so */
    char *slash = strrchr(self, '/');
    if (!slash || slash == self) return;
    *slash = 0;
    char cand[4200];
    snprintf(cand, sizeof cand, "%s/share/kforge/templates", self);
    if (up > 0 && is_dir(cand)) {
      snprintf(tdir, sizeof tdir, "%s", cand);
      return;
    }
  }
}

const char *kf_template_dir(void) {
  const char *env = getenv("KFORGE_TEMPLATES");
  if (env && *env) return env;
  pthread_once(&tdir_once, find_template_dir);
  return tdir;
}

static int read_param_table(kf_ctx *ctx, kf_template *t, const char *field, kf_tparam *out,
                            int *n_out, int is_tunable) {
  lua_State *L = t->L;
  lua_getfield(L, -1, field);
  *n_out = 0;
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return KF_OK;
  }
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return kf_err(ctx, KF_EINVAL, "%s: '%s' must be a table", t->path, field);
  }
  /* Sort names for a stable order: collect, then insertion-sort. */
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (*n_out == KF_MAX_BIND) {
      lua_pop(L, 3);
      return kf_err(ctx, KF_EINVAL, "%s: too many %s", t->path, field);
    }
    if (lua_type(L, -2) != LUA_TSTRING || !lua_istable(L, -1)) {
      lua_pop(L, 3);
      return kf_err(ctx, KF_EINVAL, "%s: %s entries must be NAME = {...}", t->path, field);
    }
    kf_tparam *p = &out[(*n_out)++];
    memset(p, 0, sizeof *p);
    /* names reach generated C (kforge lib signatures, header comments): C identifiers only */
    if (!kf_is_c_ident(lua_tostring(L, -2)) || strlen(lua_tostring(L, -2)) >= sizeof p->name) {
      int rc = kf_err(ctx, KF_EINVAL, "%s: %s name '%.40s' is not a C identifier (letters, digits, _; < 32 chars)",
                      t->path, field, lua_tostring(L, -2));
      lua_pop(L, 3);
      return rc;
    }
    snprintf(p->name, sizeof p->name, "%s", lua_tostring(L, -2));
    lua_getfield(L, -1, "accuracy");
    p->accuracy = lua_toboolean(L, -1);
    int bad_accuracy = !lua_isnil(L, -1) && !lua_isboolean(L, -1);
    lua_pop(L, 1);
    if (bad_accuracy || (p->accuracy && !is_tunable)) {
      lua_pop(L, 3);
      return kf_err(ctx, KF_EINVAL, "%s: '%s': accuracy = true|false, on tunables only (params are set by the user)",
                    t->path, p->name);
    }
    lua_getfield(L, -1, "default");
    p->required = lua_isnil(L, -1);
    p->def = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, -1, "min");
    p->min = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 1;
    lua_pop(L, 1);
    lua_getfield(L, -1, "domain");
    if (lua_istable(L, -1)) {
      int n = (int)lua_rawlen(L, -1);
      if (n > KF_MAX_DOMAIN) n = KF_MAX_DOMAIN;
      for (int i = 0; i < n; i++) {
        lua_geti(L, -1, i + 1);
        p->domain[p->n_domain++] = lua_tointeger(L, -1);
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
    if (is_tunable && (p->required || !p->n_domain)) {
      lua_pop(L, 3);
      return kf_err(ctx, KF_EINVAL, "%s: tunable '%s' needs a default and a domain", t->path, p->name);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  for (int i = 1; i < *n_out; i++)
    for (int j = i; j > 0 && strcmp(out[j - 1].name, out[j].name) > 0; j--) {
      kf_tparam tmp = out[j];
      out[j] = out[j - 1];
      out[j - 1] = tmp;
    }
  return KF_OK;
}

int kf_is_c_ident(const char *s) {
  if (!s || !*s || isdigit((unsigned char)s[0])) return 0;
  for (const char *c = s; *c; c++)
    if (!isalnum((unsigned char)*c) && *c != '_') return 0;
  return 1;
}

/* Reads a list of C identifiers tbl[key] (tbl: the table on the stack top, named `tbl_name` in
** errors) into names (at most max). */
static int read_names(kf_ctx *ctx, kf_template *t, const char *tbl_name, const char *key, char (*names)[32], int max,
                      int *n) {
  lua_State *L = t->L;
  lua_getfield(L, -1, key);
  *n = 0;
  int rc = KF_OK;
  if (!lua_isnil(L, -1) && !lua_istable(L, -1)) rc = kf_err(ctx, KF_EINVAL, "%s: %s%s must be a list of names", t->path, tbl_name, key);
  int len = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
  if (!rc && len > max) rc = kf_err(ctx, KF_EINVAL, "%s: %s%s has more than %d names", t->path, tbl_name, key, max);
  for (int i = 0; !rc && i < len; i++) {
    lua_geti(L, -1, i + 1);
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!kf_is_c_ident(v) || strlen(v) >= 32)
      rc = kf_err(ctx, KF_EINVAL, "%s: %s%s[%d] is not a C identifier of < 32 chars", t->path, tbl_name, key, i + 1);
    else snprintf(names[(*n)++], 32, "%s", v);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return rc;
}

/* The optional `lib = {...}` table (template.h). */
static int read_lib_table(kf_ctx *ctx, kf_template *t) {
  lua_State *L = t->L;
  kf_template_lib *lib = &t->lib;
  memset(lib, 0, sizeof *lib);
  lua_getfield(L, -1, "lib");
  int rc = KF_OK;
  if (lua_istable(L, -1)) {
    rc = read_names(ctx, t, "lib.", "params", lib->params, KF_MAX_BIND, &lib->n_params);
    if (!rc) rc = read_names(ctx, t, "lib.", "fallback_args", lib->fallback_args, 2 * KF_MAX_BIND, &lib->n_fallback_args);
    lua_getfield(L, -1, "fallback");
    const char *fb = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!rc && !lua_isnil(L, -1) && (!kf_is_c_ident(fb) || strlen(fb) >= sizeof lib->fallback))
      rc = kf_err(ctx, KF_EINVAL, "%s: lib.fallback must be a C identifier", t->path);
    else if (fb) snprintf(lib->fallback, sizeof lib->fallback, "%s", fb);
    lua_pop(L, 1);
    lua_getfield(L, -1, "no_fallback");
    const char *why = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (why) snprintf(lib->no_fallback, sizeof lib->no_fallback, "%s", why);
    lua_pop(L, 1);
    for (int i = 0; !rc && i < lib->n_params; i++) {
      int known = 0;
      for (int j = 0; j < t->n_params; j++) known |= !strcmp(t->params[j].name, lib->params[i]);
      if (!known) rc = kf_err(ctx, KF_EINVAL, "%s: lib.params names '%s', which is not a param", t->path, lib->params[i]);
    }
    if (!rc && lib->n_params && lib->n_params != t->n_params)
      rc = kf_err(ctx, KF_EINVAL, "%s: lib.params must list every param once (%d of %d)", t->path, lib->n_params,
                  t->n_params);
    if (!rc && lib->fallback[0] && !lib->n_fallback_args)
      rc = kf_err(ctx, KF_EINVAL, "%s: lib.fallback needs lib.fallback_args", t->path);
  } else if (!lua_isnil(L, -1))
    rc = kf_err(ctx, KF_EINVAL, "%s: 'lib' must be a table", t->path);
  lua_pop(L, 1);
  if (!rc && !lib->n_params) /* default order: the params sorted by name */
    for (int j = 0; j < t->n_params; j++) snprintf(lib->params[lib->n_params++], 32, "%s", t->params[j].name);
  return rc;
}

static char *dup_field(lua_State *L, const char *key) {
  lua_getfield(L, -1, key);
  const char *s = lua_tostring(L, -1);
  char *r = kf_xstrdup(s ? s : "");
  lua_pop(L, 1);
  return r;
}

/* Reads a template: a regular file (not a device, FIFO or directory, also through a
** symlink) of at most KF_LUA_FILE_LIMIT bytes (issue 15, fault 6). */
static int read_template_file(kf_ctx *ctx, const char *path, char **out, size_t *out_len) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return kf_err(ctx, KF_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    close(fd);
    return kf_err(ctx, KF_EINVAL, "%s: a template must be a regular file", path);
  }
  if (st.st_size > (off_t)KF_LUA_FILE_LIMIT) {
    close(fd);
    return kf_err(ctx, KF_EINVAL, "%s: template file of %lld bytes is larger than the limit of %u bytes", path,
                  (long long)st.st_size, KF_LUA_FILE_LIMIT);
  }
  char *buf = kf_xmalloc(KF_LUA_FILE_LIMIT + 1);
  size_t len = 0;
  for (;;) { /* (the file may grow after fstat: read at most limit + 1 bytes) */
    ssize_t r = read(fd, buf + len, KF_LUA_FILE_LIMIT + 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      free(buf);
      return kf_err(ctx, KF_EIO, "%s: read failed: %s", path, strerror(e));
    }
    if (r == 0 || (len += (size_t)r) > KF_LUA_FILE_LIMIT) break;
  }
  close(fd);
  if (len > KF_LUA_FILE_LIMIT) {
    free(buf);
    return kf_err(ctx, KF_EINVAL, "%s: template file is larger than the limit of %u bytes", path, KF_LUA_FILE_LIMIT);
  }
  buf[len] = 0;
  *out = buf;
  *out_len = len;
  return KF_OK;
}

/* key = { "M", "N", "K" }: the params whose values a kernel's function name shows, in this
** order (absent: the required params). Each must be a declared param. */
static int read_key(kf_ctx *ctx, kf_template *t) {
  lua_State *L = t->L;
  lua_getfield(L, -1, "key");
  int rc = KF_OK;
  if (lua_istable(L, -1)) {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n && !rc; i++) {
      lua_geti(L, -1, i);
      const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
      int found = 0;
      for (int j = 0; name && j < t->n_params; j++) found |= !strcmp(t->params[j].name, name);
      if (!found) rc = kf_err(ctx, KF_EINVAL, "%s: key[%lld] must name a param", t->path, (long long)i);
      else if (t->n_key == KF_MAX_KEY) rc = kf_err(ctx, KF_EINVAL, "%s: key names at most %d params", t->path, KF_MAX_KEY);
      else snprintf(t->key[t->n_key++], sizeof t->key[0], "%s", name);
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    rc = kf_err(ctx, KF_EINVAL, "%s: key must be a list of param names", t->path);
  } else {
    for (int j = 0; j < t->n_params && t->n_key < KF_MAX_KEY; j++)
      if (t->params[j].required) snprintf(t->key[t->n_key++], sizeof t->key[0], "%s", t->params[j].name);
  }
  lua_pop(L, 1);
  return rc;
}

int kf_template_key(const kf_template *t, int i, const char **name) {
  if (i < 0 || i >= t->n_key) return 0;
  *name = t->key[i];
  return 1;
}

int kf_template_load(kf_ctx *ctx, const char *name_or_path, kf_template **out) {
  *out = NULL;
  char path[4096];
  size_t nl = strlen(name_or_path);
  if (nl > 4 && !strcmp(name_or_path + nl - 4, ".lua"))
    snprintf(path, sizeof path, "%s", name_or_path);
  else {
    for (const char *c = name_or_path; *c; c++)
      if (*c == '/' || *c == '.')
        return kf_err(ctx, KF_EINVAL, "'%s' is neither a template name nor a .lua file", name_or_path);
    if ((size_t)snprintf(path, sizeof path, "%.*s/%s.lua", (int)(sizeof path / 2), kf_template_dir(), name_or_path) >=
        sizeof path)
      return kf_err(ctx, KF_EINVAL, "template name '%.64s...' is too long", name_or_path);
    struct stat st;
    if (stat(path, &st))
      return kf_err(ctx, KF_EINVAL, "unknown template '%s' (no %s; see 'kforge list')", name_or_path, path);
  }
  char *src = NULL;
  size_t len = 0;
  int rc = read_template_file(ctx, path, &src, &len);
  if (rc) return rc;
  rc = kf_template_load_source(ctx, path, src, len, out);
  free(src);
  return rc;
}

int kf_template_load_source(kf_ctx *ctx, const char *path, const char *src, size_t len, kf_template **out) {
  *out = NULL;
  int rc;
  if (len > KF_LUA_FILE_LIMIT)
    return kf_err(ctx, KF_EINVAL, "%s: template source of %zu bytes is larger than the limit of %u bytes", path, len,
                  KF_LUA_FILE_LIMIT);
  kf_template *t = kf_xcalloc(1, sizeof *t);
  t->path = kf_xstrdup(path);
  t->time_limit = KF_LUA_TIME_LIMIT;
  t->search_time_limit = KF_LUA_SEARCH_TIME_LIMIT;
  const char *tl = getenv("KFORGE_TEMPLATE_TIME"); /* tests: a smaller per-call budget (s) */
  if (tl && atof(tl) > 0 && atof(tl) < KF_LUA_TIME_LIMIT) {
    t->time_limit = atof(tl);
    t->search_time_limit = 3 * t->time_limit;
  }
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)src[i]) * 1099511628211ull;
  snprintf(t->hash, sizeof t->hash, "%016llx", (unsigned long long)h);
  t->L = lua_newstate(limited_alloc, t);
  if (!t->L) {
    kf_template_free(t);
    return kf_err(ctx, KF_ENOMEM, "cannot create a Lua state");
  }
  *(kf_template **)lua_getextraspace(t->L) = t;
  lua_sethook(t->L, count_hook, LUA_MASKCOUNT, KF_LUA_HOOK_EVERY);
  open_sandbox_libs(t->L);
  register_builder(t->L);

  char chunkname[4200];
  snprintf(chunkname, sizeof chunkname, "@%s", path);
  int lrc = luaL_loadbufferx(t->L, src, len, chunkname, "t");
  if (lrc != LUA_OK) {
    rc = kf_err(ctx, KF_EINVAL, "%s", lua_tostring(t->L, -1));
    kf_template_free(t);
    return rc;
  }
  if ((rc = pcall(ctx, t, 0, 1, "loading the template"))) {
    kf_template_free(t);
    return rc;
  }
  if (!lua_istable(t->L, -1)) {
    kf_template_free(t);
    return kf_err(ctx, KF_EINVAL, "%s: the template must return a table", path);
  }
  t->name = dup_field(t->L, "name");
  t->doc = dup_field(t->L, "doc");
  t->reference = dup_field(t->L, "reference");
  if (!*t->name) {
    kf_template_free(t);
    return kf_err(ctx, KF_EINVAL, "%s: the template table needs a 'name'", path);
  }
  lua_getfield(t->L, -1, "build");
  int has_build = lua_isfunction(t->L, -1);
  lua_pop(t->L, 1);
  if (!has_build) {
    kf_template_free(t);
    return kf_err(ctx, KF_EINVAL, "%s: the template table needs a 'build' function", path);
  }
  if ((rc = read_param_table(ctx, t, "params", t->params, &t->n_params, 0)) ||
      (rc = read_param_table(ctx, t, "tunables", t->tunables, &t->n_tunables, 1)) ||
      (rc = read_lib_table(ctx, t))) {
    kf_template_free(t);
    return rc;
  }
  if ((rc = read_key(ctx, t))) {
    kf_template_free(t);
    return rc;
  }
  t->ref_table = luaL_ref(t->L, LUA_REGISTRYINDEX);
  *out = t;
  return KF_OK;
}

void kf_template_free(kf_template *t) {
  if (!t) return;
  if (t->L) lua_close(t->L);
  free(t->path);
  free(t->name);
  free(t->doc);
  free(t->reference);
  free(t);
}

const char *kf_template_name(const kf_template *t) { return t->name; }
const char *kf_template_doc(const kf_template *t) { return t->doc; }
const char *kf_template_reference(const kf_template *t) { return t->reference; }
const char *kf_template_path(const kf_template *t) { return t->path; }
const char *kf_template_source_hash(const kf_template *t) { return t->hash; }
int kf_template_n_params(const kf_template *t) { return t->n_params; }
const kf_tparam *kf_template_param(const kf_template *t, int i) { return &t->params[i]; }
int kf_template_n_tunables(const kf_template *t) { return t->n_tunables; }
const kf_tparam *kf_template_tunable(const kf_template *t, int i) { return &t->tunables[i]; }
const kf_template_lib *kf_template_lib_decl(const kf_template *t) { return &t->lib; }

static int in_domain(const kf_tparam *p, int64_t v) {
  if (!p->n_domain) return v >= p->min;
  for (int i = 0; i < p->n_domain; i++)
    if (p->domain[i] == v) return 1;
  return 0;
}

static void domain_text(const kf_tparam *p, char *buf, size_t n) {
  if (!p->n_domain) {
    snprintf(buf, n, "an integer >= %lld", (long long)p->min);
    return;
  }
  size_t used = 0;
  buf[0] = 0;
  for (int i = 0; i < p->n_domain && used + 24 < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "one of ", (long long)p->domain[i]);
}

int kf_template_shape(kf_ctx *ctx, kf_template *t, const kf_binding *shape, kf_binding *params) {
  memset(params, 0, sizeof *params);
  for (int i = 0; i < shape->n; i++) {
    const kf_tparam *p = NULL;
    for (int j = 0; j < t->n_params; j++)
      if (!strcmp(t->params[j].name, shape->name[i])) p = &t->params[j];
    if (!p) {
      kf_str names = {0};
      for (int j = 0; j < t->n_params; j++) kf_str_printf(&names, "%s%s", j ? ", " : "", t->params[j].name);
      int rc = kf_err(ctx, KF_EINVAL, "--shape: template %s has no parameter '%s' (it has: %s)",
                      t->name, shape->name[i], names.data ? names.data : "none");
      kf_str_free(&names);
      return rc;
    }
    if (shape->val[i] > KF_SHAPE_MAX)
      return kf_err(ctx, KF_EINVAL, "--shape: %s=%lld is too large (at most 2^40 = %lld)", p->name,
                    (long long)shape->val[i], (long long)KF_SHAPE_MAX);
    if (!in_domain(p, shape->val[i])) {
      char dom[512];
      domain_text(p, dom, sizeof dom);
      return kf_err(ctx, KF_EINVAL, "--shape: %s=%lld is out of range for template %s (%s)",
                    p->name, (long long)shape->val[i], t->name, dom);
    }
  }
  for (int j = 0; j < t->n_params; j++) {
    const kf_tparam *p = &t->params[j];
    int64_t v;
    if (!kf_binding_get(shape, p->name, &v)) {
      if (p->required)
        return kf_err(ctx, KF_EINVAL, "--shape: template %s needs %s (e.g. --shape %s=...)",
                      t->name, p->name, p->name);
      v = p->def;
    }
    kf_binding_set(params, p->name, v);
  }
  return KF_OK;
}

static void push_binding(lua_State *L, const kf_binding *b) {
  lua_createtable(L, 0, b->n);
  for (int i = 0; i < b->n; i++) {
    lua_pushinteger(L, b->val[i]);
    lua_setfield(L, -2, b->name[i]);
  }
}

void kf_template_set_target(kf_template *t, const char *name, int vl, int vnni, int bf16, int regs) {
  snprintf(t->target_name, sizeof t->target_name, "%s", name);
  t->target_vl = vl;
  t->target_vnni = vnni;
  t->target_bf16 = bf16;
  t->target_regs = regs;
}

static void push_target(kf_template *t) {
  lua_State *L = t->L;
  lua_createtable(L, 0, 5);
  lua_pushstring(L, t->target_name[0] ? t->target_name : "cpu-generic");
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, t->target_vl ? t->target_vl : 4);
  lua_setfield(L, -2, "vl");
  lua_pushinteger(L, t->target_vnni);
  lua_setfield(L, -2, "vnni");
  lua_pushinteger(L, t->target_bf16);
  lua_setfield(L, -2, "bf16");
  lua_pushinteger(L, t->target_regs ? t->target_regs : 16);
  lua_setfield(L, -2, "regs");
}

int kf_template_check_config(kf_ctx *ctx, kf_template *t, const kf_binding *params,
                             const kf_binding *config) {
  lua_State *L = t->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref_table);
  lua_getfield(L, -1, "constraints");
  lua_remove(L, -2);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return KF_OK;
  }
  push_binding(L, params);
  push_binding(L, config);
  push_target(t);
  int rc = pcall(ctx, t, 3, 1, "constraints");
  if (rc) return rc;
  if (lua_isnil(L, -1) || (lua_isboolean(L, -1) && lua_toboolean(L, -1))) {
    lua_pop(L, 1);
    return KF_OK;
  }
  const char *msg = lua_tostring(L, -1);
  kf_str cfg = {0};
  kf_binding_format(config, &cfg);
  rc = kf_err(ctx, KF_EINVAL, "%s: constraint violated by %s: %s", t->path,
              cfg.data ? cfg.data : "(defaults)", msg ? msg : "(no message)");
  kf_str_free(&cfg);
  lua_pop(L, 1);
  return rc;
}

typedef struct search_state {
  kf_ctx *ctx;
  kf_template *t;
  const kf_binding *params;
  kf_binding *config;
  const int *free_idx;
  int n_free;
  int def_pos[KF_MAX_BIND];
  long checks;
} search_state;

/* Assigns tunables f.. so that their distances from the default positions sum to `left`;
** returns 1 when a configuration satisfies the constraints, -1 on a Lua error, 0 otherwise. */
static int search_dist(search_state *st, int f, int left) {
  if (f == st->n_free) {
    if (left) return 0;
    st->checks++;
    int rc = kf_template_check_config(st->ctx, st->t, st->params, st->config);
    if (rc == KF_OK) return 1;
    return strstr(st->ctx->errmsg, "(in constraints)") ? -1 : 0;
  }
  const kf_tparam *p = &st->t->tunables[st->free_idx[f]];
  for (int d = 0; d <= left && st->checks < 50000; d++)
    for (int sign = -1; sign <= 1; sign += 2) {
      if (d == 0 && sign == 1) continue;
      int i = st->def_pos[f] + sign * d;
      if (i < 0 || i >= p->n_domain) continue;
      kf_binding_set(st->config, p->name, p->domain[i]);
      int r = search_dist(st, f + 1, left - d);
      if (r) return r;
    }
  kf_binding_set(st->config, p->name, p->domain[st->def_pos[f]]);
  return 0;
}

int kf_template_config(kf_ctx *ctx, kf_template *t, const kf_binding *params,
                       const kf_binding *sets, kf_binding *config) {
  memset(config, 0, sizeof *config);
  for (int i = 0; i < sets->n; i++) {
    const kf_tparam *p = NULL;
    for (int j = 0; j < t->n_tunables; j++)
      if (!strcmp(t->tunables[j].name, sets->name[i])) p = &t->tunables[j];
    if (!p) {
      kf_str names = {0};
      for (int j = 0; j < t->n_tunables; j++) kf_str_printf(&names, "%s%s", j ? ", " : "", t->tunables[j].name);
      int rc = kf_err(ctx, KF_EINVAL, "--set: template %s has no tunable '%s' (it has: %s)", t->name,
                      sets->name[i], names.data ? names.data : "none");
      kf_str_free(&names);
      return rc;
    }
    if (!in_domain(p, sets->val[i])) {
      char dom[512];
      domain_text(p, dom, sizeof dom);
      return kf_err(ctx, KF_EINVAL, "--set: %s=%lld is not allowed by template %s (%s)", p->name,
                    (long long)sets->val[i], t->name, dom);
    }
  }
  /* Odometer over the unset tunables: position 0 = default, then the domain in order. */
  int free_idx[KF_MAX_BIND], n_free = 0, pos[KF_MAX_BIND] = {0};
  for (int j = 0; j < t->n_tunables; j++) {
    int64_t v;
    if (kf_binding_get(sets, t->tunables[j].name, &v)) kf_binding_set(config, t->tunables[j].name, v);
    else if (t->tunables[j].accuracy) kf_binding_set(config, t->tunables[j].name, t->tunables[j].def); /* never moved */
    else {
      kf_binding_set(config, t->tunables[j].name, t->tunables[j].def);
      free_idx[n_free++] = j;
    }
  }
  int rc = kf_template_check_config(ctx, t, params, config);
  if (rc == KF_OK || n_free == 0) return rc;
  char first_err[sizeof ctx->errmsg];
  snprintf(first_err, sizeof first_err, "%s", ctx->errmsg);
  if (strstr(ctx->errmsg, "(in constraints)")) return rc; /* a Lua error, not a rejection */
  /* Search by distance from the defaults: all configurations whose domain positions differ
  ** from the defaults' by a total of 1, then 2, ... (nearest configurations first). */
  search_state st = {ctx, t, params, config, free_idx, n_free, {0}, 0};
  t->search_deadline = kf_now() + t->search_time_limit;
  for (int f = 0; f < n_free; f++) {
    const kf_tparam *p = &t->tunables[free_idx[f]];
    for (int i = 0; i < p->n_domain; i++)
      if (p->domain[i] == p->def) st.def_pos[f] = i;
  }
  int max_dist = 0;
  for (int f = 0; f < n_free; f++) max_dist += t->tunables[free_idx[f]].n_domain;
  for (int dist = 1; dist <= max_dist && st.checks < 50000; dist++) {
    int r = search_dist(&st, 0, dist);
    if (r) t->search_deadline = 0;
    if (r == 1) return KF_OK;
    if (r < 0) return KF_EINVAL; /* a Lua error in constraints (or the search's time limit) */
  }
  t->search_deadline = 0;
  (void)pos;
  kf_str acc = {0};
  for (int j = 0; j < t->n_tunables; j++)
    if (t->tunables[j].accuracy) {
      int64_t v = 0;
      kf_binding_get(config, t->tunables[j].name, &v);
      kf_str_printf(&acc, "%s%s=%lld", acc.len ? "," : "", t->tunables[j].name, (long long)v);
    }
  if (acc.len) {
    rc = kf_err(ctx, KF_EINVAL,
                "no configuration runs at the requested accuracy %s on target %s (accuracy tunables are never "
                "lowered: --set another value explicitly, or tune with --min-bits); with the defaults: %s",
                acc.data, t->target_name[0] ? t->target_name : "(none)", first_err);
    kf_str_free(&acc);
    return rc;
  }
  return kf_err(ctx, KF_EINVAL, "no value of the unset tunables satisfies the constraints; with the defaults: %s",
                first_err);
}

int kf_template_build(kf_ctx *ctx, kf_template *t, const kf_binding *params,
                      const kf_binding *config, kf_ir_kernel **out) {
  *out = NULL;
  lua_State *L = t->L;
  t->ir = kf_ir_new(t->name);
  t->cur = &t->ir->body;
  t->building = 1;
  t->serial++;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref_table);
  lua_getfield(L, -1, "build");
  lua_remove(L, -2);
  push_binding(L, params);
  push_binding(L, config);
  push_target(t);
  int rc = pcall(ctx, t, 3, 0, "build");
  t->building = 0;
  kf_ir_kernel *ir = t->ir;
  t->ir = NULL;
  t->cur = NULL;
  if (rc == KF_OK && !ir->body.len)
    rc = kf_err(ctx, KF_EINVAL, "%s: build() produced an empty kernel", t->path);
  if (rc == KF_OK) rc = kf_ir_verify(ctx, ir);
  if (rc) {
    kf_ir_free(ir);
    return rc;
  }
  *out = ir;
  return KF_OK;
}
