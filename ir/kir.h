/* The kernel IR: a loop-level program for one kernel, shared by every backend.
 *
 * Each fusion group lowers (codegen/lower.c) to one or more Kernels.  A kernel
 * runs its body once for every point of a *parallel index space* — `npar`
 * loop variables 0..npar-1 with extents `par_extent[]`, flattened row-major —
 * and the points are independent, so a backend may run them in any order and
 * in parallel: CUDA maps them to a grid-stride loop over threads, the host
 * backend to chunks on its thread pool.  Inside the body everything is
 * sequential: `for` loops (reductions, rows), scalar locals (accumulators),
 * loads and stores.
 *
 * Values are scalars of a compute type: floats compute in f32 (spec section 4:
 * f16/bf16 compute as if in f32), integers in i64 (stored back with the
 * dtype's wrap-around), bool as bool.  A load converts the buffer's storage
 * dtype to its compute type; a store converts back, rounding f16/bf16 to
 * nearest even.  Indices are i64 expressions of loop variables and dims (the
 * values of the model's `dim` symbols, passed to every kernel).
 *
 * Buffers are graph values (KBuf.node): inputs, params, values of load-time
 * constant groups and planned intermediate values; every buffer is a dense
 * row-major array of its node's type.  Views (reshape, squeeze, unsqueeze)
 * are resolved during lowering, so kernels only index real buffers.
 *
 * Expressions are trees in the kernel's arena; a renderer is a dialect table
 * plus one recursive emitter (design.md: "renderers are data plus one loop"). */
#ifndef DSC_IR_KIR_H
#define DSC_IR_KIR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ir.h"

typedef enum { KT_BOOL, KT_I64, KT_F32, KT_COUNT } KType;

/* The compute type of a storage dtype. */
KType kir_compute_type(DType t);
const char *kir_type_name(KType t);

typedef enum {
    KE_CONST, /* f (KT_F32), i (KT_I64, KT_BOOL) */
    KE_DIM,   /* the value of dim symbol `id` (KT_I64) */
    KE_VAR,   /* loop variable `id` (KT_I64) */
    KE_LOCAL, /* the current value of local `id` */
    KE_LOAD,  /* buffer `id` at element index a (a KT_I64 expression) */
    KE_UN,    /* op(a) */
    KE_BIN,   /* op(a, b) */
    KE_SELECT, /* a ? b : c (a is KT_BOOL) */
    KE_TABLE   /* entry a (KT_I64) of the kernel's constant table `id`, as KT_I64 */
} KExprKind;

/* Operators.  Unless said otherwise the operands and result have one type. */
typedef enum {
    /* unary */
    KO_NEG, KO_ABS, KO_EXP, KO_LOG, KO_SQRT, KO_RSQRT, KO_RECIP, KO_TANH, KO_SIGMOID, KO_RELU,
    KO_ERF, KO_SILU, KO_GELU, KO_GELU_TANH, KO_NOT,
    KO_CAST, /* to the expression's type from a's type (float->int truncates and saturates,
                NaN -> 0; int->int keeps the value; ->bool is != 0) */
    KO_WRAP, /* the value stored as DType `dt` and read back: KT_I64 wrapped to the width
                of i8/i32 (two's complement); KT_F32 rounded to f16/bf16 (nearest even) */
    /* binary */
    KO_ADD, KO_SUB, KO_MUL, KO_DIV, /* KT_I64 div truncates toward zero; a division by zero
                                       is the caller's to prevent (lowering guards it) */
    KO_MOD,                         /* KT_I64 remainder (index math; operands >= 0) */
    KO_POW, KO_MAX, KO_MIN,         /* float max/min propagate NaN */
    KO_LT, KO_GT, KO_LE, KO_GE, KO_EQ, KO_NE, /* result KT_BOOL */
    KO_AND, KO_OR,                  /* KT_BOOL */
    KO_COUNT
} KOp;

const char *kir_op_name(KOp op);

typedef struct KExpr KExpr;
struct KExpr {
    KExprKind kind;
    KType type;
    KOp op;       /* KE_UN, KE_BIN */
    DType dt;     /* KO_WRAP: the dtype to wrap or round to */
    int id;       /* KE_DIM: symbol, KE_VAR: variable, KE_LOCAL: local, KE_LOAD: buffer */
    double f;     /* KE_CONST, KT_F32 */
    int64_t i;    /* KE_CONST, KT_I64 / KT_BOOL */
    KExpr *a, *b, *c;
};

typedef enum {
    KS_FOR,   /* for (var = 0; var < extent; var++) body */
    KS_SET,   /* local = value */
    KS_STORE, /* buffer[index] = value (converted to the buffer's dtype) */
    KS_IF,    /* if (value) body */
    KS_TRAP   /* record run-time error `id` (a KTrapCode, ir/trap.h) of graph node `node` with the
                 KT_I64 operand values arg[] (NULL: 0) in the run's trap record, unless an earlier
                 point recorded one; then go on (lowering guards it with KS_IF) */
} KStmtKind;

typedef struct KStmt KStmt;
struct KStmt {
    KStmtKind kind;
    int id;        /* KS_FOR: variable, KS_SET: local, KS_STORE: buffer */
    KExpr *extent; /* KS_FOR */
    KExpr *index;  /* KS_STORE */
    KExpr *value;  /* KS_SET, KS_STORE, KS_IF */
    KStmt *body;   /* KS_FOR, KS_IF: first statement of the block */
    int node;      /* KS_TRAP */
    KExpr *arg[3]; /* KS_TRAP (KTRAP_NARGS) */
    KStmt *next;   /* next statement in the same block */
};

typedef enum {
    KB_INPUT,    /* a graph input (caller's memory) */
    KB_PARAM,    /* a weight */
    KB_CONSTANT, /* a value of a load-time constant group */
    KB_PLANNED,  /* a value in the memory plan (arena buffer node->ann.buffer) */
    KB_DATA,     /* read-only data lowering made from a weight (KBuf.data, `nelems`
                    elements of `dtype`), bound by the host executor; `node` is the
                    weight it was made from (a packed block-sparse weight) */
} KBufRole;

typedef struct {
    const Node *node; /* the graph value this buffer holds */
    DType dtype;
    KBufRole role;
    bool written;     /* the kernel stores into it */
    const void *data; /* KB_DATA only */
    int64_t nelems;   /* KB_DATA only */
} KBuf;

/* A constant int32 table that is part of the kernel's code (a block-sparse
 * pattern: codegen/lower_sparse.c): an LLVM private constant, a CUDA
 * __device__ const array.  Its contents are part of the rendered source, so
 * the kernel cache keys on them.  `data` lives in the graph's arena. */
typedef struct {
    int n; /* entries, >= 1 */
    const int32_t *data;
} KTable;

/* An online-softmax loop (attention: codegen/lower.c), described for backends
 * that split it.  Loop variable `var` (a `for` at the top of the kernel body)
 * walks the keys; from m = -inf, l = 0, acc[i] = 0 it updates, per key with
 * score s and values v_i,
 *     mn = max(m, s); ms = (mn == -inf ? 0 : mn); c = exp(m - ms); p = exp(s - ms);
 *     l = l * c + p;  acc[i] = acc[i] * c + p * v_i;  m = mn
 * (the locals m, l and acc[0..nacc) are written nowhere else in the loop).  The
 * states of two disjoint sets of keys merge into the state of their union by
 *     mn = max(m_a, m_b); ms = (mn == -inf ? 0 : mn); ca = exp(m_a - ms); cb = exp(m_b - ms);
 *     l = l_a * ca + l_b * cb;  acc[i] = acc_a[i] * ca + acc_b[i] * cb;  m = mn
 * and the initial state is the identity of that merge, so a backend may split
 * the keys over threads and merge (the CUDA row mapping: codegen/cuda/schedule.h). */
typedef struct {
    int var;
    int m, l;
    int nacc;
    const int *acc;
} KOnlineSoftmax;

typedef struct Kernel {
    const char *name;   /* unique in the program, a C identifier */
    int group;          /* the fusion group it comes from */
    bool load_time;     /* part of a constant group: runs once when weights load */
    int nbufs;
    KBuf *bufs;
    int nlocals;
    KType *locals;      /* the type of each local */
    int nvars;          /* loop variables 0..nvars-1; the first npar are parallel */
    int npar;
    KExpr **par_extent; /* extents of the parallel variables (KT_I64, in dims) */
    KStmt *body;
    int ntables;
    KTable *tables;
    const KOnlineSoftmax *osm; /* an online-softmax loop of the body, or NULL */
    /* Estimates for the kernel record: floating-point (or integer) operations
     * and bytes moved per run, as dim expressions. */
    DimId flops, bytes;
} Kernel;

/* The kernels of a graph, in run order (load-time kernels first). */
typedef struct {
    Graph *g;
    int nkernels;
    Kernel **kernels;
    size_t cap;
} KProgram;

/* ---- building (allocations in the graph's arena) ---- */
KExpr *kir_const_f(Graph *g, double v);
KExpr *kir_const_i(Graph *g, int64_t v);
KExpr *kir_const_b(Graph *g, bool v);
KExpr *kir_dim(Graph *g, int sym);
KExpr *kir_var(Graph *g, int var);
KExpr *kir_local(Graph *g, const Kernel *k, int local);
KExpr *kir_load(Graph *g, const Kernel *k, int buf, KExpr *index);
KExpr *kir_un(Graph *g, KOp op, KExpr *a);
KExpr *kir_cast(Graph *g, KType to, KExpr *a);
KExpr *kir_wrap(Graph *g, DType dt, KExpr *a);
KExpr *kir_bin(Graph *g, KOp op, KExpr *a, KExpr *b);
KExpr *kir_select(Graph *g, KExpr *cond, KExpr *a, KExpr *b);
/* Entry `index` of table `table` of k (KT_I64). */
KExpr *kir_table_load(Graph *g, const Kernel *k, int table, KExpr *index);
/* A dim expression as a KT_I64 expression over KE_DIM terms. */
KExpr *kir_from_dim(Graph *g, DimId d);

Kernel *kir_kernel_create(Graph *g, const char *name, int group);
/* The index of the buffer for `node` in k (added if new; `written` is or-ed in). */
int kir_buffer(Graph *g, Kernel *k, const Node *node, KBufRole role, bool written);
int kir_new_local(Graph *g, Kernel *k, KType t);
/* Adds a KB_DATA buffer (see KBufRole) and returns its index. */
int kir_data_buffer(Graph *g, Kernel *k, const Node *from, DType dtype, const void *data, int64_t nelems);
/* Adds a constant table of n >= 1 entries (copied into the arena); its index. */
int kir_new_table(Graph *g, Kernel *k, const int32_t *data, int n);
int kir_new_var(Kernel *k);

KStmt *kir_for(Graph *g, int var, KExpr *extent, KStmt *body);
KStmt *kir_set(Graph *g, int local, KExpr *value);
KStmt *kir_store(Graph *g, int buf, KExpr *index, KExpr *value);
KStmt *kir_if(Graph *g, KExpr *cond, KStmt *body);
/* A KS_TRAP statement; args[] (up to three, NULL for fewer) are KT_I64. */
KStmt *kir_trap(Graph *g, int code, const Node *node, KExpr *a0, KExpr *a1, KExpr *a2);
/* Whether the statements of block s contain a KS_TRAP (at any depth). */
bool kir_has_trap(const KStmt *s);
/* Appends s (and the statements linked after it) to the block starting at *head. */
void kir_append(KStmt **head, KStmt *s);

void kir_program_add(KProgram *p, Kernel *k);

/* Checks a kernel's invariants (types agree, variables bound before use,
 * buffers and locals in range, loads and stores index with KT_I64).
 * Reports into d; false on a violation (a lowering bug). */
bool kir_verify(const Graph *g, const Kernel *k, Diag *d);

/* A readable text form, for dumps and tests. */
void kir_print(const Graph *g, const Kernel *k, FILE *out);

#endif
