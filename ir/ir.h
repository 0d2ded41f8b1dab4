/* The graph IR.
 *
 * A Graph is a list of Nodes in topological order (definition before use).
 * Every node computes exactly one tensor, so a Node is also the value it
 * defines.  Operands are other nodes; optional operands that are absent are
 * NULL.  Non-tensor arguments (axes, perm, eps, ...) are Attrs, and after
 * ir_infer every attribute the operator's schema gives a default for is present
 * with an explicit value, so consumers never repeat the defaults.
 *
 * Types are a dtype plus a shape of DimIds (see dim.h), so symbolic shapes
 * compare by integer equality.
 *
 * Later stages attach their results to nodes through `Ann` (fusion group,
 * buffer, precision, sparse layout, quantisation) without changing the node
 * layout, and source hints (`@sparse(...)`, `@precision(...)`) are kept on the
 * node so passes can read them and the printer can write them back. */
#ifndef DSC_IR_IR_H
#define DSC_IR_IR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "diag.h"
#include "dim.h"

/* ---- dtypes -------------------------------------------------------------- */

typedef enum { DT_F32, DT_F16, DT_BF16, DT_I8, DT_I32, DT_I64, DT_BOOL, DT_COUNT } DType;

const char *dtype_name(DType t);                 /* "f32" */
bool dtype_from_name(const char *name, DType *out);
int dtype_size(DType t);                          /* bytes per element */
bool dtype_is_float(DType t);
bool dtype_is_int(DType t);                       /* i8, i32, i64 */

/* IEEE half and bfloat16 conversions, round to nearest even (ir/scalar.c). */
float ir_f16_to_f32(uint16_t h);
uint16_t ir_f32_to_f16(float f);
float ir_bf16_to_f32(uint16_t h);
uint16_t ir_f32_to_bf16(float f);
/* The value v becomes when stored as dtype t and read back: floats round to
 * f32 and then to f16/bf16 (nearest even); integers truncate toward zero and
 * saturate at the dtype's range, NaN becomes 0; bool is v != 0. */
double ir_dtype_round(DType t, double v);
/* The same for i64, exactly (a double cannot hold every i64). */
int64_t ir_dtype_round_i64(double v);
/* v wrapped to the width of integer dtype dt, two's complement (i8, i32; i64
 * unchanged; bool: v != 0) -- the run-time semantics of integer overflow. */
int64_t ir_wrap_int(int64_t v, DType dt);
/* uint64 to int64 two's complement, without implementation-defined casts. */
int64_t ir_u64_to_i64(uint64_t u);

/* ---- operators ----------------------------------------------------------- */

typedef enum {
#define OP(e, n, c) OP_##e,
#include "ops.def"
#undef OP
    OP_COUNT
} OpKind;

typedef enum {
    OPC_SOURCE,
    OPC_ELEMENTWISE,
    OPC_REDUCTION,
    OPC_NORM,
    OPC_LINALG,
    OPC_LAYOUT,
    OPC_CONV,
    OPC_COMPOSITE,
    OPC_COUNT
} OpClass;

/* Kinds of operator parameters: tensors are operands, the rest attributes. */
typedef enum {
    PK_TENSOR, /* an operand; a number literal or dim name is materialised as a CONST */
    PK_INT,
    PK_FLOAT,
    PK_STRING,
    PK_BOOL,
    PK_DTYPE,
    PK_INTS, /* list of integer literals (axes, perm, stride) */
    PK_DIMS, /* list of dim expressions (reshape shape, slice starts/ends) */
} ParamKind;

enum { IR_MAX_RANK = 8, IR_MAX_PARAMS = 10 };

typedef struct {
    const char *name;
    ParamKind kind;
    bool required;
} OpParam;

/* The signature of an operator.  Tensor params are operands and may be given
 * positionally (in order) or by name; the others only by name, except that a
 * DTYPE param may be given positionally (`cast(x, f16)`).  A variadic op
 * (concat) takes any number (>= 1) of positional tensors, and its other params
 * by name. */
typedef struct {
    const char *name;
    OpClass cls;
    bool variadic;
    int nparams;
    OpParam params[IR_MAX_PARAMS];
} OpSchema;

const char *ir_op_name(OpKind op);
OpClass ir_op_class(OpKind op);
const char *ir_op_class_name(OpClass c);
bool ir_op_lookup(const char *name, OpKind *out); /* builtin operators only (not INPUT/PARAM/CONST) */
const OpSchema *ir_op_schema(OpKind op);
/* Number of tensor params of a non-variadic op (the size of Node.in). */
int ir_op_tensor_params(OpKind op);
/* Index of the named tensor param in Node.in, or -1. */
int ir_op_operand_index(OpKind op, const char *name);

/* ---- types and attributes -------------------------------------------------- */

typedef struct {
    DType dtype;
    int rank; /* 0 = scalar */
    DimId dim[IR_MAX_RANK];
} Type;

typedef enum { AV_INT, AV_FLOAT, AV_STRING, AV_BOOL, AV_DTYPE, AV_INTS, AV_DIMS } AttrKind;

typedef struct {
    const char *name;
    AttrKind kind;
    Loc loc;
    int64_t i;      /* AV_INT */
    double f;       /* AV_FLOAT */
    const char *s;  /* AV_STRING */
    bool b;         /* AV_BOOL */
    DType dt;       /* AV_DTYPE */
    int n;          /* AV_INTS, AV_DIMS */
    int64_t *ints;  /* AV_INTS */
    DimId *dims;    /* AV_DIMS */
} Attr;

/* A source hint `@name(key=value, ...)`; positional values have key NULL. */
typedef struct {
    const char *name;
    Loc loc;
    int nargs;
    Attr *args; /* args[i].name is the key */
} Hint;

/* Results of later stages, attached without changing the node layout. */
typedef struct {
    int group;        /* fusion group id, -1 = none */
    int buffer;       /* memory-plan buffer id, -1 = none */
    DType precision;  /* compute precision chosen by the precision pass */
    bool has_precision;
    void *sparse;     /* block-sparse layout (passes/sparsify) */
    void *quant;      /* quantisation parameters (passes/precision) */
} Ann;

typedef struct Node Node;
struct Node {
    int id; /* index in Graph.nodes */
    OpKind op;
    Type type;
    Loc loc;
    const char *name; /* user name (input, param, let, output); NULL for temporaries */
    int nin;
    Node **in; /* operands; NULL where an optional one is absent */
    int nattrs;
    Attr *attrs;
    int nhints;
    Hint *hints;
    /* OP_CONST: a scalar whose value is `fval`, or the dim expression `dval`
     * when dval != DIM_INVALID (a dim name used as a value). */
    double fval;
    DimId dval;
    /* OP_PARAM: the key in the weights file (the name unless `from` was given). */
    const char *key;
    Ann ann;
};

typedef struct {
    const char *name;
    Node *node;
    Loc loc;
} Output;

/* Fusion groups: a set of nodes a backend lowers to one kernel (passes/fuse.c).
 * After fusion every computing node (not INPUT, PARAM or CONST) is in exactly
 * one group, the members of a group are contiguous in g->nodes, and the groups
 * appear in g->nodes in the order they run (the schedule). */
typedef enum {
    GK_ELEMENTWISE, /* a chain or tree of elementwise ops, broadcasts included */
    GK_REDUCTION,   /* a reduction or normalisation with its elementwise producers and consumers */
    GK_GEMM,        /* matmul/linear/conv with a prologue and an epilogue */
    GK_ATTENTION,   /* matmul, scale, mask, softmax, matmul */
    GK_LAYOUT,      /* data movement only: transpose, concat, slice, gather, ... */
    GK_SINGLE,      /* one operation on its own (pooling, ...) */
    GK_ALIAS,       /* no kernel: a reshape/squeeze/unsqueeze that only renames memory */
    GK_CONSTANT,    /* depends on params and constants only: computed once when weights load */
    GK_COUNT
} GroupKind;

typedef struct Group {
    int id;
    GroupKind kind;
    const char *reason; /* why the group was formed, printed in dumps */
    int nnodes;
    Node **nodes; /* members in graph order */
    size_t cap;
} Group;

/* Memory-plan buffers (passes/memplan.c): every value that lives in memory
 * between kernels is assigned a buffer (Node.ann.buffer); values whose live
 * ranges do not overlap share one.  `bytes` is the buffer's size as a dim
 * expression, evaluated when the dims are bound. */
typedef struct {
    int id;
    DimId bytes;
} Buffer;

typedef struct Graph {
    Arena *arena;
    const char *file;       /* the source file, for diagnostics and relative paths */
    const char *name;       /* model name */
    Loc loc;
    const char *weights;    /* `weights "..."` path as written, or NULL */
    Loc weights_loc;
    DimTable *dims;
    Node **nodes;
    int nnodes;
    size_t nodecap;
    Output *outputs;
    int noutputs;
    size_t outcap;
    Group **groups; /* set by fusion; empty before */
    int ngroups;
    size_t groupcap;
    /* passes/precision: what --precision asked for (passes/precision.h); NULL: f32 */
    struct PrecisionRequest *precision;
    Buffer *buffers; /* set by memory planning; empty before */
    int nbuffers;
    size_t buffercap;
} Graph;

/* Creates an empty graph whose memory lives in `arena` (owned by the caller). */
Graph *ir_graph_create(Arena *arena, const char *file);
/* A new node of `op` with `nin` NULL operands; not yet in the graph. */
Node *ir_node_create(Graph *g, OpKind op, int nin, Loc loc);
/* Appends the node to the graph (sets its id). */
void ir_append(Graph *g, Node *n);
void ir_add_output(Graph *g, const char *name, Node *node, Loc loc);
/* Rebuilds ids after passes removed or reordered nodes. */
void ir_renumber(Graph *g);
/* Inserts n into the graph just before `pos` (which is in the graph) and renumbers. */
void ir_insert_before(Graph *g, Node *pos, Node *n);
/* Makes every operand use of `old` and every output that names it refer to
 * `repl` instead (types must be equal).  `old` stays in the graph, dead. */
void ir_replace_uses(Graph *g, Node *old, Node *repl);
/* Number of operand uses of n (outputs not counted) and whether n is an output. */
int ir_use_count(const Graph *g, const Node *n);
bool ir_is_output(const Graph *g, const Node *n);

/* Fusion groups */
const char *ir_group_kind_name(GroupKind k);
bool ir_group_kind_from_name(const char *name, GroupKind *out);
Group *ir_group_create(Graph *g, GroupKind kind, const char *reason);
void ir_group_add(Graph *g, Group *grp, Node *n);
/* Forgets all groups and buffers (and the nodes' group and buffer ids). */
void ir_groups_clear(Graph *g);
void ir_buffers_clear(Graph *g);
/* Number of nodes that compute (everything but INPUT, PARAM and CONST). */
int ir_count_ops(const Graph *g);
/* Bytes of a node's value: numel times dtype size, as a dim expression. */
DimId ir_value_bytes(Graph *g, const Node *n);
/* Rebuilds g->buffers from the nodes' buffer ids: buffer i's size is the
 * largest value assigned to it (dim_max over their sizes). */
void ir_buffers_rebuild(Graph *g);
bool ir_is_source(const Node *n);

/* Attributes */
Attr *ir_attr_set(Graph *g, Node *n, const char *name, AttrKind kind, Loc loc);
const Attr *ir_attr(const Node *n, const char *name);
int64_t ir_attr_int(const Node *n, const char *name, int64_t dflt);
double ir_attr_float(const Node *n, const char *name, double dflt);
const char *ir_attr_string(const Node *n, const char *name, const char *dflt);
bool ir_attr_bool(const Node *n, const char *name, bool dflt);
const Hint *ir_hint(const Node *n, const char *name);
/* A hint's argument by key (NULL: the first positional one), or NULL. */
const Attr *ir_hint_arg(const Hint *h, const char *key);

/* Normalises axis `a` for rank r (negative counts from the end); -1 if out of range. */
int ir_norm_axis(int64_t a, int rank);

/* `f32[B,S,768]` (dtype and shape) in the graph's arena. */
const char *ir_type_str(const Graph *g, const Type *t);
bool ir_type_eq(const Type *a, const Type *b);
/* Number of elements as a dim expression. */
DimId ir_type_numel(Graph *g, const Type *t);
/* True when every dim of the type is a constant. */
bool ir_type_is_static(const Graph *g, const Type *t);

/* Shape and dtype inference for one node whose operands are already typed and
 * whose attributes are set: checks arity, attribute values, dtypes and shapes,
 * fills in default attributes, and sets n->type.  Reports located errors naming
 * the operator and the shapes involved; returns false on error.  (ir/infer.c) */
bool ir_infer(Graph *g, Node *n, Diag *d);

/* Checks the graph's invariants (topological order, operand arity, types equal
 * to what inference gives, outputs present).  (ir/verify.c) */
bool ir_verify(Graph *g, Diag *d);

/* Writes the graph as DSG source that parses back to the same graph. (ir/print.c) */
void ir_print_dsg(const Graph *g, FILE *out);
/* Writes Graphviz: ops as nodes, tensors (dtype and shape) on edges. (ir/dot.c) */
void ir_print_dot(const Graph *g, FILE *out);
/* Shortest text for a double that reads back to the same value. */
void ir_format_double(double v, char *buf, size_t n);

#endif
