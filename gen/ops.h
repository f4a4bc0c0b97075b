/*
** ops.h: the typed op table (entries in ops.def).
**
** One definition per tile op: its operands (roles: name, register or memory, allowed
** dtypes and ranks, optional, written), its attributes (name, kind, default, range) and a
** check of the relations between its operands. From it come the op kinds (KF_OP_*), the
** role and attribute indices (KF_MMA_ACC = the slot of mma's `acc` in node->t[],
** KF_MMA_PASSES_ATTR = the slot of `passes` in node->i[]), the Lua binding
** (kf.NAME{role = tile, attr = value}), the IR printer's names and the verifier's per-op
** contract (kf_op_verify, called by kf_ir_verify). Lowerings read operands through
** the names: n->t[KF_MMA_ACC], n->i[KF_MMA_PASSES_ATTR].
*/
#ifndef KF_OPS_H
#define KF_OPS_H

#include <stdint.h>

#define KF_OP_MAX_ROLES 6
#define KF_OP_MAX_ATTRS 4

/* Operand levels (a mask), dtypes (a mask over kf_scalar), ranks (a mask over 1..4). */
#define KF_RL_REG 1u
#define KF_RL_MEM 2u
#define KF_DT(S) (1u << KF_##S)
#define KF_RK(R) (1u << (R))
#define KF_RK_ANY (KF_RK(1) | KF_RK(2) | KF_RK(3) | KF_RK(4))
/* role flags */
#define KF_RF_OPT 1u
#define KF_RF_WRITE 2u
#define KF_RF_QW 4u
#define KF_RF_MAT 8u
#define KF_RF_FIT 16u
/* op flags */
#define KF_OPF_LEN 1u

/* The op kinds: LOOP, then one per ops.def entry, in its order. */
typedef enum {
  KF_OP_LOOP,
#define KF_OPDEF(E, name, flags, doc) KF_OP_##E,
#include "ops.def"
  KF_OP_N_OPS
} kf_ir_opkind;

/* Role slots: KF_<OP>_<ROLE> indexes node->t[]; KF_<OP>_N_ROLES. */
#define KF_OPDEF(E, name, flags, doc) enum {
#define KF_ROLE(E, R, name, level, dtypes, ranks, flags) KF_##E##_##R,
#define KF_OPEND(E) KF_##E##_N_ROLES };
#include "ops.def"

/* Attribute slots: KF_<OP>_<ATTR>_ATTR indexes node->i[] (the number attribute is node->f). */
#define KF_OPDEF(E, name, flags, doc) enum { KF_##E##_ATTR_BASE_ = -1,
#define KF_IATTR(E, A, name, def, lo, hi) KF_##E##_##A##_ATTR,
#define KF_BATTR(E, A, name, def) KF_##E##_##A##_ATTR,
#define KF_SATTR(E, A, name, choices) KF_##E##_##A##_ATTR,
#define KF_OPEND(E) KF_##E##_N_ATTRS };
#include "ops.def"

typedef struct kf_op_role {
  const char *name;
  unsigned level, dtypes, ranks, flags;
} kf_op_role;

typedef enum { KF_ATTR_INT, KF_ATTR_BOOL, KF_ATTR_STR } kf_attr_kind;

typedef struct kf_op_attr {
  const char *name;
  kf_attr_kind kind;
  int64_t def, min, max;
  const char *choices; /* KF_ATTR_STR: "a|b|c" */
} kf_op_attr;

struct kf_ir_kernel;
struct kf_ir_node;
struct kf_opcheck;

typedef struct kf_op_def {
  const char *name;
  unsigned flags;
  const char *doc;
  int n_roles, n_required;
  kf_op_role roles[KF_OP_MAX_ROLES];
  int n_attrs;
  kf_op_attr attrs[KF_OP_MAX_ATTRS];
  const char *num_name; /* the number attribute (node->f), NULL if none */
  double num_def;
  int num_required;
  /* relations between operands; returns 0 or kf_opcheck_fail's code */
  int (*check)(struct kf_opcheck *c);
} kf_op_def;

/* NULL for KF_OP_LOOP and out-of-range kinds. */
const kf_op_def *kf_op_get(int op);
/* The op named `name`, or -1. */
int kf_op_find(const char *name);
/* The choice of string attribute a at index v ("?" if out of range), into buf. */
const char *kf_op_choice(const kf_op_attr *a, int64_t v, char *buf, size_t n);

#endif
