/* Graph construction, the operator table and small helpers shared by every
 * stage.  The operator schemas below are the single description of each
 * operator's parameters: the frontend binds call arguments with them, the
 * printer writes calls back with them, and inference checks against them. */
#include "ir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"

/* ---- dtypes -------------------------------------------------------------- */

static const struct {
    const char *name;
    int size;
} dtypes[DT_COUNT] = {
    [DT_F32] = {"f32", 4}, [DT_F16] = {"f16", 2}, [DT_BF16] = {"bf16", 2}, [DT_I8] = {"i8", 1},
    [DT_I32] = {"i32", 4}, [DT_I64] = {"i64", 8}, [DT_BOOL] = {"bool", 1},
};

const char *dtype_name(DType t) { return (unsigned)t < DT_COUNT ? dtypes[t].name : "?"; }
int dtype_size(DType t) { return (unsigned)t < DT_COUNT ? dtypes[t].size : 0; }
bool dtype_is_float(DType t) { return t == DT_F32 || t == DT_F16 || t == DT_BF16; }
bool dtype_is_int(DType t) { return t == DT_I8 || t == DT_I32 || t == DT_I64; }

bool dtype_from_name(const char *name, DType *out) {
    for (int i = 0; i < DT_COUNT; i++)
        if (strcmp(dtypes[i].name, name) == 0) {
            *out = (DType)i;
            return true;
        }
    return false;
}

/* ---- operator table ------------------------------------------------------ */

static const char *op_names[OP_COUNT] = {
#define OP(e, n, c) [OP_##e] = n,
#include "ops.def"
#undef OP
};

static const OpClass op_classes[OP_COUNT] = {
#define OP(e, n, c) [OP_##e] = OPC_##c,
#include "ops.def"
#undef OP
};

#define T(n) {n, PK_TENSOR, true}
#define TOPT(n) {n, PK_TENSOR, false}
#define A(n, k) {n, PK_##k, false}
#define AREQ(n, k) {n, PK_##k, true}
#define UNARY(e, n) [OP_##e] = {n, OPC_ELEMENTWISE, false, 1, {T("x")}}
#define BINARY(e, n) [OP_##e] = {n, OPC_ELEMENTWISE, false, 2, {T("a"), T("b")}}
#define REDUCE(e, n) [OP_##e] = {n, OPC_REDUCTION, false, 3, {T("x"), A("axes", INTS), A("keepdims", BOOL)}}

static const OpSchema schemas[OP_COUNT] = {
    [OP_INPUT] = {"input", OPC_SOURCE, false, 0, {{0}}},
    [OP_PARAM] = {"param", OPC_SOURCE, false, 0, {{0}}},
    [OP_CONST] = {"const", OPC_SOURCE, false, 0, {{0}}},
    BINARY(ADD, "add"),
    BINARY(SUB, "sub"),
    BINARY(MUL, "mul"),
    BINARY(DIV, "div"),
    BINARY(POW, "pow"),
    BINARY(MAXIMUM, "maximum"),
    BINARY(MINIMUM, "minimum"),
    UNARY(NEG, "neg"),
    UNARY(ABS, "abs"),
    UNARY(EXP, "exp"),
    UNARY(LOG, "log"),
    UNARY(SQRT, "sqrt"),
    UNARY(RSQRT, "rsqrt"),
    UNARY(RECIPROCAL, "reciprocal"),
    UNARY(TANH, "tanh"),
    UNARY(SIGMOID, "sigmoid"),
    UNARY(RELU, "relu"),
    UNARY(ERF, "erf"),
    UNARY(SILU, "silu"),
    [OP_GELU] = {"gelu", OPC_ELEMENTWISE, false, 2, {T("x"), A("approximate", STRING)}},
    [OP_CLIP] = {"clip", OPC_ELEMENTWISE, false, 3, {T("x"), TOPT("min"), TOPT("max")}},
    BINARY(LESS, "less"),
    BINARY(GREATER, "greater"),
    BINARY(EQUAL, "equal"),
    [OP_WHERE] = {"where", OPC_ELEMENTWISE, false, 3, {T("cond"), T("a"), T("b")}},
    [OP_CAST] = {"cast", OPC_ELEMENTWISE, false, 2, {T("x"), AREQ("dtype", DTYPE)}},
    REDUCE(REDUCE_SUM, "reduce_sum"),
    REDUCE(REDUCE_MEAN, "reduce_mean"),
    REDUCE(REDUCE_MAX, "reduce_max"),
    [OP_SOFTMAX] = {"softmax", OPC_NORM, false, 2, {T("x"), A("axis", INT)}},
    [OP_LAYERNORM] = {"layernorm", OPC_NORM, false, 5,
                      {T("x"), T("scale"), TOPT("bias"), A("axis", INT), A("eps", FLOAT)}},
    [OP_RMSNORM] = {"rmsnorm", OPC_NORM, false, 4, {T("x"), T("scale"), A("axis", INT), A("eps", FLOAT)}},
    [OP_MATMUL] = {"matmul", OPC_LINALG, false, 2, {T("a"), T("b")}},
    [OP_LINEAR] = {"linear", OPC_LINALG, false, 3, {T("x"), T("w"), TOPT("b")}},
    [OP_RESHAPE] = {"reshape", OPC_LAYOUT, false, 2, {T("x"), AREQ("shape", DIMS)}},
    [OP_TRANSPOSE] = {"transpose", OPC_LAYOUT, false, 2, {T("x"), A("perm", INTS)}},
    [OP_CONCAT] = {"concat", OPC_LAYOUT, true, 1, {AREQ("axis", INT)}},
    [OP_SLICE] = {"slice", OPC_LAYOUT, false, 5,
                  {T("x"), AREQ("starts", DIMS), AREQ("ends", DIMS), A("axes", INTS), A("steps", INTS)}},
    [OP_GATHER] = {"gather", OPC_LAYOUT, false, 3, {T("x"), T("indices"), A("axis", INT)}},
    [OP_UNSQUEEZE] = {"unsqueeze", OPC_LAYOUT, false, 2, {T("x"), AREQ("axes", INTS)}},
    [OP_SQUEEZE] = {"squeeze", OPC_LAYOUT, false, 2, {T("x"), A("axes", INTS)}},
    [OP_CONV2D] = {"conv2d", OPC_CONV, false, 7,
                   {T("x"), T("w"), TOPT("b"), A("stride", INTS), A("padding", INTS),
                    A("dilation", INTS), A("groups", INT)}},
    [OP_MAX_POOL2D] = {"max_pool2d", OPC_CONV, false, 4,
                       {T("x"), AREQ("kernel", INTS), A("stride", INTS), A("padding", INTS)}},
    [OP_AVG_POOL2D] = {"avg_pool2d", OPC_CONV, false, 4,
                       {T("x"), AREQ("kernel", INTS), A("stride", INTS), A("padding", INTS)}},
    [OP_GLOBAL_AVG_POOL] = {"global_avg_pool", OPC_CONV, false, 1, {T("x")}},
    [OP_BATCHNORM] = {"batchnorm", OPC_NORM, false, 6,
                      {T("x"), T("scale"), T("bias"), T("mean"), T("var"), A("eps", FLOAT)}},
    [OP_ATTENTION] = {"attention", OPC_COMPOSITE, false, 5,
                      {T("q"), T("k"), T("v"), TOPT("mask"), TOPT("scale")}},
};

const char *ir_op_name(OpKind op) { return (unsigned)op < OP_COUNT ? op_names[op] : "?"; }
OpClass ir_op_class(OpKind op) {
    DSC_ASSERT((unsigned)op < OP_COUNT);
    return op_classes[op];
}

const OpSchema *ir_op_schema(OpKind op) {
    DSC_ASSERT((unsigned)op < OP_COUNT);
    return &schemas[op];
}

const char *ir_op_class_name(OpClass c) {
    static const char *names[OPC_COUNT] = {"source", "elementwise", "reduction", "norm",
                                           "linalg", "layout",      "conv",      "composite"};
    return (unsigned)c < OPC_COUNT ? names[c] : "?";
}

bool ir_op_lookup(const char *name, OpKind *out) {
    for (int i = 0; i < OP_COUNT; i++) {
        if (i == OP_INPUT || i == OP_PARAM || i == OP_CONST) continue;
        if (strcmp(op_names[i], name) == 0) {
            *out = (OpKind)i;
            return true;
        }
    }
    return false;
}

int ir_op_tensor_params(OpKind op) {
    int n = 0;
    for (int i = 0; i < schemas[op].nparams; i++) n += schemas[op].params[i].kind == PK_TENSOR;
    return n;
}

int ir_op_operand_index(OpKind op, const char *name) {
    int k = 0;
    for (int i = 0; i < schemas[op].nparams; i++) {
        if (schemas[op].params[i].kind != PK_TENSOR) continue;
        if (strcmp(schemas[op].params[i].name, name) == 0) return k;
        k++;
    }
    return -1;
}

/* ---- graph --------------------------------------------------------------- */

Graph *ir_graph_create(Arena *arena, const char *file) {
    Graph *g = arena_alloc(arena, sizeof *g);
    g->arena = arena;
    g->file = file ? arena_strdup(arena, file) : NULL;
    g->dims = dim_table_create(arena);
    return g;
}

Node *ir_node_create(Graph *g, OpKind op, int nin, Loc loc) {
    Node *n = arena_alloc(g->arena, sizeof *n);
    n->id = -1;
    n->op = op;
    n->loc = loc;
    n->nin = nin;
    n->in = nin ? arena_alloc(g->arena, sizeof(Node *) * (size_t)nin) : NULL;
    n->dval = DIM_INVALID;
    n->ann.group = n->ann.buffer = -1;
    return n;
}

void ir_append(Graph *g, Node *n) {
    n->id = g->nnodes;
    VEC_PUSH(g->arena, g->nodes, g->nnodes, g->nodecap, n);
}

void ir_add_output(Graph *g, const char *name, Node *node, Loc loc) {
    Output o = {name, node, loc};
    VEC_PUSH(g->arena, g->outputs, g->noutputs, g->outcap, o);
}

void ir_renumber(Graph *g) {
    for (int i = 0; i < g->nnodes; i++) g->nodes[i]->id = i;
}

void ir_insert_before(Graph *g, Node *pos, Node *n) {
    DSC_ASSERT(pos->id >= 0 && pos->id < g->nnodes && g->nodes[pos->id] == pos);
    int at = pos->id;
    ir_append(g, n); /* grows the array */
    memmove(&g->nodes[at + 1], &g->nodes[at], sizeof(Node *) * (size_t)(g->nnodes - 1 - at));
    g->nodes[at] = n;
    ir_renumber(g);
}

void ir_replace_uses(Graph *g, Node *old, Node *repl) {
    DSC_ASSERT(ir_type_eq(&old->type, &repl->type));
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++)
            if (g->nodes[i]->in[k] == old) g->nodes[i]->in[k] = repl;
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i].node == old) g->outputs[i].node = repl;
}

int ir_use_count(const Graph *g, const Node *n) {
    int c = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++) c += g->nodes[i]->in[k] == n;
    return c;
}

bool ir_is_output(const Graph *g, const Node *n) {
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i].node == n) return true;
    return false;
}

Attr *ir_attr_set(Graph *g, Node *n, const char *name, AttrKind kind, Loc loc) {
    for (int i = 0; i < n->nattrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) {
            n->attrs[i] = (Attr){.name = n->attrs[i].name, .kind = kind, .loc = loc};
            return &n->attrs[i];
        }
    n->attrs = arena_grow(g->arena, n->attrs, sizeof(Attr) * (size_t)n->nattrs,
                          sizeof(Attr) * (size_t)(n->nattrs + 1));
    Attr *a = &n->attrs[n->nattrs++];
    *a = (Attr){.name = arena_strdup(g->arena, name), .kind = kind, .loc = loc};
    return a;
}

const Attr *ir_attr(const Node *n, const char *name) {
    for (int i = 0; i < n->nattrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t ir_attr_int(const Node *n, const char *name, int64_t dflt) {
    const Attr *a = ir_attr(n, name);
    return a && a->kind == AV_INT ? a->i : dflt;
}

double ir_attr_float(const Node *n, const char *name, double dflt) {
    const Attr *a = ir_attr(n, name);
    if (!a) return dflt;
    return a->kind == AV_FLOAT ? a->f : a->kind == AV_INT ? (double)a->i : dflt;
}

const char *ir_attr_string(const Node *n, const char *name, const char *dflt) {
    const Attr *a = ir_attr(n, name);
    return a && a->kind == AV_STRING ? a->s : dflt;
}

bool ir_attr_bool(const Node *n, const char *name, bool dflt) {
    const Attr *a = ir_attr(n, name);
    return a && a->kind == AV_BOOL ? a->b : dflt;
}

const Hint *ir_hint(const Node *n, const char *name) {
    for (int i = 0; i < n->nhints; i++)
        if (strcmp(n->hints[i].name, name) == 0) return &n->hints[i];
    return NULL;
}

const Attr *ir_hint_arg(const Hint *h, const char *key) {
    for (int i = 0; h && i < h->nargs; i++) {
        const char *k = h->args[i].name;
        if (key ? k && strcmp(k, key) == 0 : !k) return &h->args[i];
    }
    return NULL;
}

int ir_norm_axis(int64_t a, int rank) {
    if (a < -(int64_t)rank || a >= rank) return -1;
    return (int)(a < 0 ? a + rank : a);
}

const char *ir_type_str(const Graph *g, const Type *t) {
    const char *shape = dim_shape_str(g->dims, t->dim, t->rank, g->arena);
    return arena_printf(g->arena, "%s%s", dtype_name(t->dtype), t->rank ? shape : "");
}

bool ir_type_eq(const Type *a, const Type *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

bool ir_type_is_static(const Graph *g, const Type *t) {
    for (int i = 0; i < t->rank; i++)
        if (!dim_is_const(g->dims, t->dim[i], NULL)) return false;
    return true;
}

DimId ir_type_numel(Graph *g, const Type *t) {
    DimId n = dim_const(g->dims, 1);
    for (int i = 0; i < t->rank; i++) n = dim_mul(g->dims, n, t->dim[i]);
    return n;
}

void ir_format_double(double v, char *buf, size_t n) {
    if (isnan(v)) {
        snprintf(buf, n, "(0.0/0.0)");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v > 0 ? "(1.0/0.0)" : "(-1.0/0.0)");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* DSG has no literal negative numbers (unary minus is an operator); the
     * caller parenthesises when needed.  Make sure a float reads as a float. */
    if (!strpbrk(buf, ".eEn")) {
        size_t l = strlen(buf);
        if (l + 2 < n) memcpy(buf + l, ".0", 3);
    }
}

/* ---- fusion groups and buffers ------------------------------------------ */

static const char *group_kinds[GK_COUNT] = {"elementwise", "reduction", "gemm",  "attention",
                                            "layout",      "single",    "alias", "constant"};

const char *ir_group_kind_name(GroupKind k) { return (unsigned)k < GK_COUNT ? group_kinds[k] : "?"; }

bool ir_group_kind_from_name(const char *name, GroupKind *out) {
    for (int i = 0; i < GK_COUNT; i++)
        if (strcmp(group_kinds[i], name) == 0) {
            *out = (GroupKind)i;
            return true;
        }
    return false;
}

Group *ir_group_create(Graph *g, GroupKind kind, const char *reason) {
    Group *grp = arena_alloc(g->arena, sizeof *grp);
    grp->id = g->ngroups;
    grp->kind = kind;
    grp->reason = reason ? arena_strdup(g->arena, reason) : "";
    VEC_PUSH(g->arena, g->groups, g->ngroups, g->groupcap, grp);
    return grp;
}

void ir_group_add(Graph *g, Group *grp, Node *n) {
    n->ann.group = grp->id;
    VEC_PUSH(g->arena, grp->nodes, grp->nnodes, grp->cap, n);
}

void ir_groups_clear(Graph *g) {
    for (int i = 0; i < g->nnodes; i++) g->nodes[i]->ann.group = -1;
    g->ngroups = 0;
}

void ir_buffers_clear(Graph *g) {
    for (int i = 0; i < g->nnodes; i++) g->nodes[i]->ann.buffer = -1;
    g->nbuffers = 0;
}

bool ir_is_source(const Node *n) { return n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_CONST; }

int ir_count_ops(const Graph *g) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++) n += !ir_is_source(g->nodes[i]);
    return n;
}

DimId ir_value_bytes(Graph *g, const Node *n) {
    return dim_mul(g->dims, ir_type_numel(g, &n->type), dim_const(g->dims, dtype_size(n->type.dtype)));
}

void ir_buffers_rebuild(Graph *g) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->ann.buffer >= n) n = g->nodes[i]->ann.buffer + 1;
    g->nbuffers = 0;
    for (int b = 0; b < n; b++) {
        Buffer buf = {b, dim_const(g->dims, 0)};
        VEC_PUSH(g->arena, g->buffers, g->nbuffers, g->buffercap, buf);
    }
    for (int i = 0; i < g->nnodes; i++) {
        Node *x = g->nodes[i];
        if (x->ann.buffer < 0) continue;
        Buffer *buf = &g->buffers[x->ann.buffer];
        int64_t zero;
        DimId bytes = ir_value_bytes(g, x);
        buf->bytes = dim_is_const(g->dims, buf->bytes, &zero) && zero == 0 ? bytes : dim_max(g->dims, buf->bytes, bytes);
    }
}
