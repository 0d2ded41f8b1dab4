/* Shape and dtype inference (ir/infer.c), driven through the IR API: each test
 * builds input nodes with hand-written types, one operator node with its
 * attributes, and checks the inferred type (as ir_type_str text), the
 * attributes filled in, or the error message. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static Arena *arena;
static Graph *g;
static Diag *diag;
static const Loc here = {"test.dsg", 1, 1};

static void setup(void) {
    arena = arena_create();
    diag = diag_create();
    g = ir_graph_create(arena, "test.dsg");
    const char *names[] = {"B", "S", "T", "H", "N", "V"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        dim_declare(g->dims, names[i], -1, here);
}

static void teardown(void) {
    diag_destroy(diag);
    arena_destroy(arena);
}

TestSuite(infer, .init = setup, .fini = teardown);

/* ---- a tiny parser for dim expressions and types in test text ------------ */

static DimId parse_sum(const char **p);

static void skip(const char **p) {
    while (**p == ' ')
        (*p)++;
}

static DimId parse_atom(const char **p) {
    skip(p);
    if (**p == '-') {
        (*p)++;
        return dim_sub(g->dims, dim_const(g->dims, 0), parse_atom(p));
    }
    if (**p == '(') {
        (*p)++;
        DimId d = parse_sum(p);
        skip(p);
        cr_assert_eq(**p, ')');
        (*p)++;
        return d;
    }
    if (isdigit((unsigned char)**p)) {
        char *end;
        long long v = strtoll(*p, &end, 10);
        *p = end;
        return dim_const(g->dims, v);
    }
    char name[32];
    int n = 0;
    while (isalnum((unsigned char)**p) || **p == '_')
        name[n++] = *(*p)++;
    name[n] = 0;
    int sym = dim_sym_lookup(g->dims, name);
    cr_assert(sym >= 0, "unknown dim '%s'", name);
    return dim_sym(g->dims, sym);
}

static DimId parse_prod(const char **p) {
    DimId d = parse_atom(p);
    for (;;) {
        skip(p);
        if (**p == '*')
            (*p)++, d = dim_mul(g->dims, d, parse_atom(p));
        else if (**p == '/')
            (*p)++, d = dim_div(g->dims, d, parse_atom(p));
        else
            return d;
    }
}

static DimId parse_sum(const char **p) {
    DimId d = parse_prod(p);
    for (;;) {
        skip(p);
        if (**p == '+')
            (*p)++, d = dim_add(g->dims, d, parse_prod(p));
        else if (**p == '-')
            (*p)++, d = dim_sub(g->dims, d, parse_prod(p));
        else
            return d;
    }
}

/* "[a, b, ...]" -> dims; returns the count. */
static int parse_dims(const char *s, DimId *out, int max) {
    const char *p = s;
    skip(&p);
    cr_assert_eq(*p, '[', "bad list %s", s);
    p++;
    int n = 0;
    skip(&p);
    if (*p == ']') return 0;
    for (;;) {
        cr_assert(n < max);
        out[n++] = parse_sum(&p);
        skip(&p);
        if (*p == ']') return n;
        cr_assert_eq(*p, ',', "bad list %s", s);
        p++;
    }
}

static Type parse_type(const char *s) {
    Type t = {0};
    char dt[8];
    int n = 0;
    while (isalnum((unsigned char)s[n]))
        dt[n] = s[n], n++;
    dt[n] = 0;
    cr_assert(dtype_from_name(dt, &t.dtype), "bad dtype in %s", s);
    if (s[n] == '[') t.rank = parse_dims(s + n, t.dim, IR_MAX_RANK);
    return t;
}

/* ---- graph building ----------------------------------------------------- */

static Node *input(const char *type) {
    Node *n = ir_node_create(g, OP_INPUT, 0, here);
    n->type = parse_type(type);
    ir_append(g, n);
    return n;
}

/* An op node with `nin` operands (NULL for an absent optional one). */
static Node *op(OpKind k, int nin, ...) {
    Node *n = ir_node_create(g, k, nin, here);
    va_list ap;
    va_start(ap, nin);
    for (int i = 0; i < nin; i++)
        n->in[i] = va_arg(ap, Node *);
    va_end(ap);
    ir_append(g, n);
    return n;
}

static Loc attr_at = {"test.dsg", 7, 9};

static void set_int(Node *n, const char *name, int64_t v) { ir_attr_set(g, n, name, AV_INT, attr_at)->i = v; }
static void set_float(Node *n, const char *name, double v) {
    ir_attr_set(g, n, name, AV_FLOAT, attr_at)->f = v;
}
static void set_bool(Node *n, const char *name, bool v) { ir_attr_set(g, n, name, AV_BOOL, attr_at)->b = v; }
static void set_str(Node *n, const char *name, const char *v) {
    ir_attr_set(g, n, name, AV_STRING, attr_at)->s = v;
}
static void set_dtype(Node *n, const char *name, DType v) {
    ir_attr_set(g, n, name, AV_DTYPE, attr_at)->dt = v;
}

static void set_ints(Node *n, const char *name, const char *list) {
    DimId d[32];
    int k = parse_dims(list, d, 32);
    Attr *a = ir_attr_set(g, n, name, AV_INTS, attr_at);
    a->n = k;
    a->ints = arena_alloc(arena, sizeof(int64_t) * (size_t)(k ? k : 1));
    for (int i = 0; i < k; i++)
        cr_assert(dim_is_const(g->dims, d[i], &a->ints[i]));
}

static void set_dims(Node *n, const char *name, const char *list) {
    DimId d[32];
    int k = parse_dims(list, d, 32);
    Attr *a = ir_attr_set(g, n, name, AV_DIMS, attr_at);
    a->n = k;
    a->dims = arena_alloc(arena, sizeof(DimId) * (size_t)(k ? k : 1));
    memcpy(a->dims, d, sizeof(DimId) * (size_t)k);
}

static const char *ints_text(const Attr *a) {
    static char buf[256];
    size_t len = 0;
    buf[len++] = '[';
    for (int i = 0; i < a->n; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%" PRId64, i ? "," : "", a->ints[i]);
    snprintf(buf + len, sizeof buf - len, "]");
    return buf;
}

/* ---- checks --------------------------------------------------------------- */

static void ok(Node *n, const char *want) {
    bool r = ir_infer(g, n, diag);
    cr_assert(r, "%s: unexpected error: %s", ir_op_name(n->op),
              diag_count(diag) ? diag_message(diag, 0, NULL, NULL) : "(none)");
    cr_assert_eq(diag_count(diag), 0);
    cr_assert_str_eq(ir_type_str(g, &n->type), want);
    /* with every default now explicit, inference again gives the same type */
    Type first = n->type;
    int nattrs = n->nattrs;
    cr_assert(ir_infer(g, n, diag));
    cr_assert(ir_type_eq(&first, &n->type));
    cr_assert_eq(n->nattrs, nattrs);
}

static void err(Node *n, const char *want) {
    cr_assert_not(ir_infer(g, n, diag), "%s: expected error '%s', got type %s", ir_op_name(n->op), want,
                  ir_type_str(g, &n->type));
    cr_assert_eq(diag_error_count(diag), 1);
    cr_assert_str_eq(diag_message(diag, 0, NULL, NULL), want);
    diag_clear(diag);
}

static Loc err_loc(void) {
    Loc loc;
    diag_message(diag, 0, NULL, &loc);
    return loc;
}

static void has_ints(Node *n, const char *name, const char *want) {
    const Attr *a = ir_attr(n, name);
    cr_assert(a && a->kind == AV_INTS, "attribute %s not filled in", name);
    cr_assert_str_eq(ints_text(a), want, "%s", name);
}

/* ---- elementwise ---------------------------------------------------------- */

Test(infer, binary_same_shape) {
    Node *x = input("f32[B,S,768]");
    ok(op(OP_ADD, 2, x, x), "f32[B,S,768]");
    ok(op(OP_SUB, 2, x, x), "f32[B,S,768]");
    ok(op(OP_MUL, 2, x, x), "f32[B,S,768]");
    ok(op(OP_DIV, 2, x, x), "f32[B,S,768]");
    ok(op(OP_POW, 2, x, x), "f32[B,S,768]");
    ok(op(OP_MAXIMUM, 2, x, x), "f32[B,S,768]");
    ok(op(OP_MINIMUM, 2, x, x), "f32[B,S,768]");
}

Test(infer, broadcast_scalars_ones_and_symbols) {
    ok(op(OP_ADD, 2, input("f32[B,S,768]"), input("f32")), "f32[B,S,768]");
    ok(op(OP_MUL, 2, input("f32"), input("f32[768]")), "f32[768]");
    ok(op(OP_ADD, 2, input("f32[B,1,768]"), input("f32[S,1]")), "f32[B,S,768]");
    ok(op(OP_SUB, 2, input("f32[B,S,1]"), input("f32[768]")), "f32[B,S,768]");
    ok(op(OP_ADD, 2, input("f32[B*S,768]"), input("f32[S*B,1]")), "f32[B*S,768]");
    ok(op(OP_MUL, 2, input("i32[1]"), input("i32[1,1]")), "i32[1,1]");
    ok(op(OP_MAXIMUM, 2, input("f32[S+1]"), input("f32[1+S]")), "f32[S+1]");
    ok(op(OP_ADD, 2, input("f32"), input("f32")), "f32");
}

Test(infer, broadcast_errors) {
    err(op(OP_ADD, 2, input("f32[B,S,768]"), input("f32[B,512]")),
        "add: cannot broadcast f32[B,S,768] and f32[B,512]");
    err(op(OP_MUL, 2, input("f32[B]"), input("f32[S]")), "mul: cannot broadcast f32[B] and f32[S]");
    err(op(OP_SUB, 2, input("f32[B,768]"), input("f32[768,768]")),
        "sub: cannot broadcast f32[B,768] and f32[768,768]");
    /* three operands: the conflicting pair is named */
    err(op(OP_WHERE, 3, input("bool[B,1]"), input("f32[S]"), input("f32[T]")),
        "where: cannot broadcast f32[S] and f32[T]");
}

Test(infer, dtype_rules) {
    err(op(OP_MUL, 2, input("f32[B,S]"), input("f16[B,S]")), "mul: dtype mismatch: f32[B,S] and f16[B,S]");
    err(op(OP_ADD, 2, input("bool[B]"), input("bool[B]")), "add: expects a numeric tensor, got bool[B]");
    err(op(OP_EXP, 1, input("i32[B,S]")), "exp: expects a floating-point tensor, got i32[B,S]");
    err(op(OP_LESS, 2, input("bool[B]"), input("bool[B]")), "less: expects a numeric tensor, got bool[B]");
    ok(op(OP_EQUAL, 2, input("bool[B]"), input("bool[1]")), "bool[B]");
    ok(op(OP_ADD, 2, input("i64[B]"), input("i64")), "i64[B]");
    ok(op(OP_NEG, 1, input("i8[4]")), "i8[4]");
}

Test(infer, unary_ops) {
    static const OpKind floats[] = {OP_EXP,  OP_LOG,     OP_SQRT, OP_RSQRT, OP_RECIPROCAL,
                                    OP_TANH, OP_SIGMOID, OP_ERF,  OP_SILU,  OP_GELU};
    static const OpKind numeric[] = {OP_NEG, OP_ABS, OP_RELU};
    Node *x = input("bf16[B,S,768]"), *i = input("i32[B]");
    for (size_t k = 0; k < sizeof floats / sizeof *floats; k++) {
        ok(op(floats[k], 1, x), "bf16[B,S,768]");
        Node *bad = op(floats[k], 1, i);
        cr_assert_not(ir_infer(g, bad, diag), "%s accepted i32", ir_op_name(floats[k]));
        diag_clear(diag);
    }
    for (size_t k = 0; k < sizeof numeric / sizeof *numeric; k++) {
        ok(op(numeric[k], 1, x), "bf16[B,S,768]");
        ok(op(numeric[k], 1, i), "i32[B]");
    }
}

Test(infer, gelu_approximate) {
    Node *x = input("f32[B,3072]");
    Node *n = op(OP_GELU, 1, x);
    ok(n, "f32[B,3072]");
    cr_assert_str_eq(ir_attr_string(n, "approximate", NULL), "none");
    n = op(OP_GELU, 1, x);
    set_str(n, "approximate", "tanh");
    ok(n, "f32[B,3072]");
    cr_assert_str_eq(ir_attr_string(n, "approximate", NULL), "tanh");
    n = op(OP_GELU, 1, x);
    set_str(n, "approximate", "fast");
    err(n, "gelu: approximate must be \"none\" or \"tanh\", got \"fast\"");
}

Test(infer, compare_where_clip_cast) {
    Node *a = input("f32[B,S]"), *b = input("f32[S]");
    ok(op(OP_LESS, 2, a, b), "bool[B,S]");
    ok(op(OP_GREATER, 2, b, a), "bool[B,S]");
    ok(op(OP_EQUAL, 2, a, input("f32")), "bool[B,S]");
    ok(op(OP_WHERE, 3, input("bool[B,1]"), b, input("f32")), "f32[B,S]");
    err(op(OP_WHERE, 3, a, a, a), "where: condition must be bool, got f32[B,S]");
    err(op(OP_WHERE, 3, input("bool[B,S]"), a, input("f16[S]")),
        "where: dtype mismatch: f32[B,S] and f16[S]");
    ok(op(OP_CLIP, 3, a, NULL, NULL), "f32[B,S]");
    ok(op(OP_CLIP, 3, a, input("f32"), NULL), "f32[B,S]");
    ok(op(OP_CLIP, 3, b, NULL, input("f32[B,1]")), "f32[B,S]");
    err(op(OP_CLIP, 3, a, input("i32"), NULL), "clip: dtype mismatch: f32[B,S] and i32");
    Node *c = op(OP_CAST, 1, input("bool[B,S]"));
    set_dtype(c, "dtype", DT_F16);
    ok(c, "f16[B,S]");
    err(op(OP_CAST, 1, a), "cast: missing attribute 'dtype'");
}

/* ---- reductions ------------------------------------------------------------ */

Test(infer, reduce_defaults) {
    Node *x = input("f32[B,S,768]");
    Node *n = op(OP_REDUCE_SUM, 1, x);
    ok(n, "f32[1,1,1]");
    has_ints(n, "axes", "[0,1,2]");
    cr_assert(ir_attr(n, "keepdims") && ir_attr_bool(n, "keepdims", false));
    n = op(OP_REDUCE_MAX, 1, x);
    set_bool(n, "keepdims", false);
    ok(n, "f32");
    n = op(OP_REDUCE_SUM, 1, input("f32"));
    ok(n, "f32");
    has_ints(n, "axes", "[]");
}

Test(infer, reduce_axes) {
    Node *x = input("f32[B,S,768]");
    Node *n = op(OP_REDUCE_MEAN, 1, x);
    set_ints(n, "axes", "[-1]");
    set_bool(n, "keepdims", false);
    ok(n, "f32[B,S]");
    has_ints(n, "axes", "[-1]"); /* kept as written */
    n = op(OP_REDUCE_SUM, 1, x);
    set_ints(n, "axes", "[0,2]");
    ok(n, "f32[1,S,1]");
    n = op(OP_REDUCE_MAX, 1, x);
    set_ints(n, "axes", "[-2]");
    set_bool(n, "keepdims", false);
    ok(n, "f32[B,768]");
    n = op(OP_REDUCE_SUM, 1, x);
    set_ints(n, "axes", "[]");
    ok(n, "f32[B,S,768]");
}

Test(infer, reduce_errors) {
    Node *x = input("f32[B,S,768]");
    Node *n = op(OP_REDUCE_SUM, 1, x);
    set_ints(n, "axes", "[3]");
    err(n, "reduce_sum: axis 3 is out of range for rank 3: f32[B,S,768]");
    cr_assert_eq(attr_at.line, 7);
    n = op(OP_REDUCE_SUM, 1, x);
    set_ints(n, "axes", "[-4]");
    err(n, "reduce_sum: axis -4 is out of range for rank 3: f32[B,S,768]");
    n = op(OP_REDUCE_SUM, 1, x);
    set_ints(n, "axes", "[1,-2]");
    cr_assert_not(ir_infer(g, n, diag));
    cr_assert_str_eq(diag_message(diag, 0, NULL, NULL), "reduce_sum: axes [1,-2] name axis 1 twice");
    cr_assert_eq(err_loc().line, attr_at.line); /* reported at the attribute */
    diag_clear(diag);
    err(op(OP_REDUCE_MEAN, 1, input("i32[B]")), "reduce_mean: expects a floating-point tensor, got i32[B]");
    ok(op(OP_REDUCE_SUM, 1, input("i32[B]")), "i32[1]");
}

/* ---- normalisation -------------------------------------------------------------- */

Test(infer, softmax) {
    Node *n = op(OP_SOFTMAX, 1, input("f16[B,H,S,S]"));
    ok(n, "f16[B,H,S,S]");
    cr_assert_eq(ir_attr_int(n, "axis", 0), -1);
    n = op(OP_SOFTMAX, 1, input("f32[B,S]"));
    set_int(n, "axis", 2);
    err(n, "softmax: axis 2 is out of range for rank 2: f32[B,S]");
    err(op(OP_SOFTMAX, 1, input("i64[B]")), "softmax: expects a floating-point tensor, got i64[B]");
}

Test(infer, layernorm) {
    Node *x = input("f32[B,S,768]");
    Node *n = op(OP_LAYERNORM, 3, x, input("f32[768]"), input("f32[768]"));
    ok(n, "f32[B,S,768]");
    cr_assert_eq(ir_attr_int(n, "axis", 0), -1);
    cr_assert_float_eq(ir_attr_float(n, "eps", 0), 1e-5, 1e-12);
    ok(op(OP_LAYERNORM, 3, x, input("f32[768]"), NULL), "f32[B,S,768]");
    ok(op(OP_LAYERNORM, 3, x, input("f32[1]"), input("f32")), "f32[B,S,768]");
    n = op(OP_LAYERNORM, 3, x, input("f32[S,768]"), input("f32[768]"));
    set_int(n, "axis", -2);
    set_float(n, "eps", 1e-6);
    ok(n, "f32[B,S,768]");
    cr_assert_float_eq(ir_attr_float(n, "eps", 0), 1e-6, 1e-12);
    err(op(OP_LAYERNORM, 3, x, input("f32[512]"), NULL),
        "layernorm: scale f32[512] does not broadcast to the normalised shape [768] of f32[B,S,768]");
    err(op(OP_LAYERNORM, 3, x, input("f32[S,768]"), NULL),
        "layernorm: scale f32[S,768] does not broadcast to the normalised shape [768] of f32[B,S,768]");
    err(op(OP_LAYERNORM, 3, x, input("f32[768]"), input("f16[768]")),
        "layernorm: dtype mismatch: f32[B,S,768] and bias f16[768]");
    n = op(OP_LAYERNORM, 3, x, input("f32[768]"), NULL);
    set_float(n, "eps", -1);
    err(n, "layernorm: eps must be a finite non-negative number, got -1");
    n = op(OP_LAYERNORM, 3, x, input("f32[768]"), NULL);
    set_int(n, "axis", 3);
    err(n, "layernorm: axis 3 is out of range for rank 3: f32[B,S,768]");
}

Test(infer, rmsnorm) {
    Node *x = input("bf16[B,S,4096]");
    Node *n = op(OP_RMSNORM, 2, x, input("bf16[4096]"));
    ok(n, "bf16[B,S,4096]");
    cr_assert_eq(ir_attr_int(n, "axis", 0), -1);
    cr_assert_float_eq(ir_attr_float(n, "eps", 0), 1e-6, 1e-15);
    n = op(OP_RMSNORM, 2, x, input("bf16[4096]"));
    set_int(n, "eps", 0); /* an integer for a float attribute is fine */
    ok(n, "bf16[B,S,4096]");
    err(op(OP_RMSNORM, 2, x, input("bf16[S]")),
        "rmsnorm: scale bf16[S] does not broadcast to the normalised shape [4096] of bf16[B,S,4096]");
}

Test(infer, batchnorm) {
    Node *x = input("f32[N,64,H,T]"), *c = input("f32[64]");
    Node *n = op(OP_BATCHNORM, 5, x, c, c, c, c);
    ok(n, "f32[N,64,H,T]");
    cr_assert_float_eq(ir_attr_float(n, "eps", 0), 1e-5, 1e-12);
    err(op(OP_BATCHNORM, 5, x, c, c, input("f32[32]"), c),
        "batchnorm: mean f32[32] must be [64], the channels of f32[N,64,H,T]");
    err(op(OP_BATCHNORM, 5, input("f32[64]"), c, c, c, c),
        "batchnorm: x must be [N,C,...] (rank >= 2), got f32[64]");
}

/* ---- linear algebra ------------------------------------------------------------ */

Test(infer, matmul) {
    ok(op(OP_MATMUL, 2, input("f32[B,S,768]"), input("f32[768,3072]")), "f32[B,S,3072]");
    ok(op(OP_MATMUL, 2, input("f32[768]"), input("f32[768,10]")), "f32[10]");
    ok(op(OP_MATMUL, 2, input("f32[B,S,768]"), input("f32[768]")), "f32[B,S]");
    ok(op(OP_MATMUL, 2, input("f32[768]"), input("f32[768]")), "f32");
    ok(op(OP_MATMUL, 2, input("f32[S]"), input("f32[B,H,S,T]")), "f32[B,H,T]");
    ok(op(OP_MATMUL, 2, input("f16[B,1,S,64]"), input("f16[H,64,T]")), "f16[B,H,S,T]");
    ok(op(OP_MATMUL, 2, input("i32[2,3]"), input("i32[3,4]")), "i32[2,4]");
}

Test(infer, matmul_errors) {
    err(op(OP_MATMUL, 2, input("f32[B,S,768]"), input("f32[512,3072]")),
        "matmul: inner dimensions differ: f32[B,S,768] x f32[512,3072]");
    err(op(OP_MATMUL, 2, input("f32[B,S,64]"), input("f32[H,64,S]")),
        "matmul: cannot broadcast batch dimensions: f32[B,S,64] x f32[H,64,S]");
    err(op(OP_MATMUL, 2, input("f32"), input("f32[3]")),
        "matmul: operands must have rank >= 1: f32 x f32[3]");
    err(op(OP_MATMUL, 2, input("f32[3,4]"), input("f16[4]")), "matmul: dtype mismatch: f32[3,4] and f16[4]");
}

Test(infer, linear) {
    ok(op(OP_LINEAR, 3, input("f32[B,S,768]"), input("f32[3072,768]"), input("f32[3072]")), "f32[B,S,3072]");
    ok(op(OP_LINEAR, 3, input("f32[768]"), input("f32[10,768]"), NULL), "f32[10]");
    ok(op(OP_LINEAR, 3, input("f32[B,768]"), input("f32[10,768]"), input("f32[1]")), "f32[B,10]");
    err(op(OP_LINEAR, 3, input("f32[B,S,768]"), input("f32[3072,512]"), NULL),
        "linear: x has 768 features but w expects 512: f32[B,S,768], w f32[3072,512]");
    err(op(OP_LINEAR, 3, input("f32[B,S,768]"), input("f32[768]"), NULL),
        "linear: w must be 2-D [out, in], got f32[768]");
    err(op(OP_LINEAR, 3, input("f32[B,768]"), input("f32[3072,768]"), input("f32[768]")),
        "linear: b f32[768] does not match the 3072 outputs of w f32[3072,768]");
    err(op(OP_LINEAR, 3, input("f32[B,768]"), input("f16[3072,768]"), NULL),
        "linear: dtype mismatch: f32[B,768] and w f16[3072,768]");
    err(op(OP_LINEAR, 3, input("f32[B,768]"), NULL, NULL), "linear: missing operand 'w'");
}

/* ---- layout ---------------------------------------------------------------------- */

Test(infer, reshape) {
    Node *x = input("f32[B,S,768]");
    Node *n = op(OP_RESHAPE, 1, x);
    set_dims(n, "shape", "[B,S,12,-1]");
    ok(n, "f32[B,S,12,64]");
    n = op(OP_RESHAPE, 1, x);
    set_dims(n, "shape", "[-1,768]");
    ok(n, "f32[B*S,768]");
    n = op(OP_RESHAPE, 1, x);
    set_dims(n, "shape", "[S*B,768]");
    ok(n, "f32[B*S,768]");
    n = op(OP_RESHAPE, 1, x);
    set_dims(n, "shape", "[B,-1]");
    ok(n, "f32[B,768*S]");
    n = op(OP_RESHAPE, 1, input("f32[B*S,12,64]"));
    set_dims(n, "shape", "[B,S,-1]");
    ok(n, "f32[B,S,768]");
    n = op(OP_RESHAPE, 1, input("f32[6]"));
    set_dims(n, "shape", "[]"); /* wrong count */
    err(n, "reshape: element count differs: f32[6] (6 elements) to [] (1 elements)");
    n = op(OP_RESHAPE, 1, input("f32[1,1]"));
    set_dims(n, "shape", "[]");
    ok(n, "f32");
    n = op(OP_RESHAPE, 1, input("f32[0,5]"));
    set_dims(n, "shape", "[5,0]"); /* 0 is a real zero, not ONNX's copy */
    ok(n, "f32[5,0]");
}

Test(infer, reshape_errors) {
    Node *x = input("f32[B,S,768]");
    Node *n = op(OP_RESHAPE, 1, x);
    set_dims(n, "shape", "[B,S,100]");
    err(n, "reshape: element count differs: f32[B,S,768] (768*B*S elements) to [B,S,100] (100*B*S elements)");
    n = op(OP_RESHAPE, 1, x);
    set_dims(n, "shape", "[-1,B,-1]");
    err(n, "reshape: at most one -1 is allowed in shape [-1,B,-1]");
    n = op(OP_RESHAPE, 1, x);
    set_dims(n, "shape", "[B,-1,7]");
    err(n, "reshape: cannot infer -1: f32[B,S,768] (768*B*S elements) is not a multiple of [B,-1,7] (7*B "
           "elements)");
    n = op(OP_RESHAPE, 1, x);
    set_dims(n, "shape", "[T,-1]");
    err(n,
        "reshape: cannot infer -1: f32[B,S,768] (768*B*S elements) is not a multiple of [T,-1] (T elements)");
    n = op(OP_RESHAPE, 1, x);
    set_dims(n, "shape", "[-2,-1]");
    err(n, "reshape: shape entry -2 must be non-negative (only a single -1 is inferred): [-2,-1]");
    n = op(OP_RESHAPE, 1, x);
    set_dims(n, "shape", "[-S,-1]");
    err(n, "reshape: shape entry -S must be non-negative (only a single -1 is inferred): [-S,-1]");
    n = op(OP_RESHAPE, 1, input("f32[0,5]"));
    set_dims(n, "shape", "[0,-1]");
    err(n, "reshape: cannot infer -1 in [0,-1]: the other entries have 0 elements");
    n = op(OP_RESHAPE, 1, x);
    err(n, "reshape: missing attribute 'shape'");
}

Test(infer, transpose) {
    Node *x = input("f32[B,S,H,64]");
    Node *n = op(OP_TRANSPOSE, 1, x);
    ok(n, "f32[64,H,S,B]");
    has_ints(n, "perm", "[3,2,1,0]");
    n = op(OP_TRANSPOSE, 1, x);
    set_ints(n, "perm", "[0,2,1,3]");
    ok(n, "f32[B,H,S,64]");
    n = op(OP_TRANSPOSE, 1, x);
    set_ints(n, "perm", "[0,1,-1,-2]");
    ok(n, "f32[B,S,64,H]");
    n = op(OP_TRANSPOSE, 1, input("f32[B,S,768]"));
    set_ints(n, "perm", "[0,2,2]");
    err(n, "transpose: perm [0,2,2] is not a permutation of 0..2 for f32[B,S,768]");
    n = op(OP_TRANSPOSE, 1, input("f32[B,S,768]"));
    set_ints(n, "perm", "[1,0]");
    err(n, "transpose: perm [1,0] is not a permutation of 0..2 for f32[B,S,768]");
    ok(op(OP_TRANSPOSE, 1, input("f32")), "f32");
}

Test(infer, concat) {
    Node *n = op(OP_CONCAT, 3, input("f32[B,S,64]"), input("f32[B,S,T]"), input("f32[B,S,1]"));
    set_int(n, "axis", -1);
    ok(n, "f32[B,S,T+65]");
    n = op(OP_CONCAT, 2, input("f32[S,4]"), input("f32[S,4]"));
    set_int(n, "axis", 0);
    ok(n, "f32[2*S,4]");
    n = op(OP_CONCAT, 1, input("i64[3]"));
    set_int(n, "axis", 0);
    ok(n, "i64[3]");
    n = op(OP_CONCAT, 2, input("f32[B,5,7]"), input("f32[B,3,8]"));
    set_int(n, "axis", 1);
    err(n, "concat: shapes differ outside axis 1: f32[B,5,7] and f32[B,3,8]");
    n = op(OP_CONCAT, 2, input("f32[B,5]"), input("f32[5]"));
    set_int(n, "axis", 0);
    err(n, "concat: rank mismatch: f32[B,5] and f32[5]");
    n = op(OP_CONCAT, 2, input("f32[5]"), input("f16[5]"));
    set_int(n, "axis", 0);
    err(n, "concat: dtype mismatch: f32[5] and f16[5]");
    n = op(OP_CONCAT, 1, input("f32"));
    set_int(n, "axis", 0);
    err(n, "concat: axis 0 is out of range for rank 0: f32");
    err(op(OP_CONCAT, 1, input("f32[3]")), "concat: missing attribute 'axis'");
}

static Node *slice(const char *type, const char *starts, const char *ends, const char *axes,
                   const char *steps) {
    Node *n = op(OP_SLICE, 1, input(type));
    set_dims(n, "starts", starts);
    set_dims(n, "ends", ends);
    if (axes) set_ints(n, "axes", axes);
    if (steps) set_ints(n, "steps", steps);
    return n;
}

Test(infer, slice_constant) {
    Node *n = slice("f32[10,20]", "[2]", "[7]", NULL, NULL);
    ok(n, "f32[5,20]");
    has_ints(n, "axes", "[0]");
    has_ints(n, "steps", "[1]");
    ok(slice("f32[10,20]", "[1,-3]", "[-1,9223372036854775807]", NULL, NULL), "f32[8,3]");
    ok(slice("f32[10,20]", "[-1]", "[-9223372036854775807]", "[1]", "[-1]"), "f32[10,20]");
    ok(slice("f32[10,20]", "[0]", "[20]", "[-1]", "[3]"), "f32[10,7]");
    ok(slice("f32[10]", "[8]", "[2]", NULL, NULL), "f32[0]");
    ok(slice("f32[10]", "[100]", "[0]", NULL, "[-2]"), "f32[5]");
    ok(slice("f32[10]", "[-100]", "[100]", NULL, "[4]"), "f32[3]");
}

Test(infer, slice_symbolic) {
    ok(slice("f32[B,S,768]", "[0]", "[9223372036854775807]", "[1]", NULL), "f32[B,S,768]");
    ok(slice("f32[B,S,768]", "[0]", "[-1]", "[1]", NULL), "f32[B,max(S-1, 0),768]");
    ok(slice("f32[B,S,768]", "[1]", "[2147483648]", "[-2]", NULL), "f32[B,max(S-1, 0),768]");
    ok(slice("f32[B,S,768]", "[0]", "[S]", "[1]", NULL), "f32[B,S,768]");
    ok(slice("f32[B,S,768]", "[0,0]", "[S,384]", "[1,2]", NULL), "f32[B,S,384]");
    ok(slice("f32[B,2*S]", "[S]", "[2*S]", "[1]", NULL), "f32[B,S]");
    ok(slice("f32[B,2*S]", "[0]", "[9223372036854775807]", "[1]", "[2]"), "f32[B,S]");
    ok(slice("f32[S]", "[-1]", "[-9223372036854775807]", NULL, "[-1]"), "f32[S]");
    ok(slice("f32[S+4]", "[2]", "[-2]", NULL, NULL), "f32[S]");
    ok(slice("f32[B,S]", "[0]", "[1]", "[1]", NULL), "f32[B,min(S, 1)]");
    ok(slice("f32[B,S]", "[-1]", "[9223372036854775807]", "[1]", NULL), "f32[B,min(S, 1)]");
    ok(slice("f32[B,S]", "[0]", "[S-1]", "[1]", NULL), "f32[B,max(S-1, 0)]");
    ok(slice("f32[B,S]", "[1]", "[S-1]", "[1]", NULL), "f32[B,max(S-2, 0)]");
    ok(slice("f32[B,S]", "[S-1]", "[S]", "[1]", NULL), "f32[B,min(S, 1)]");
    ok(slice("f32[B,S]", "[2]", "[5]", "[1]", NULL), "f32[B,max(min(S-2, 3), 0)]");
    ok(slice("f32[S]", "[1]", "[9223372036854775807]", NULL, "[2]"), "f32[floordiv(S, 2)]");
}

/* Symbolic slice lengths agree with ONNX's integer rule for every binding. */
static int64_t onnx_len(int64_t d, int64_t s, int64_t e, int64_t st) {
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (st > 0) {
        s = s < 0 ? 0 : s > d ? d : s;
        e = e < 0 ? 0 : e > d ? d : e;
    } else {
        s = s < -1 ? -1 : s > d - 1 ? d - 1 : s;
        e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
    }
    int64_t n = 0;
    if (st > 0)
        for (int64_t i = s; i < e; i += st)
            n++;
    else
        for (int64_t i = s; i > e; i += st)
            n++;
    return n;
}

Test(infer, slice_symbolic_exact) {
    static const char *pos[] = {"0",
                                "1",
                                "3",
                                "-1",
                                "-3",
                                "S",
                                "S-1",
                                "S-2",
                                "2*S",
                                "-S",
                                "1-S",
                                "S-9",
                                "S+1",
                                "9223372036854775807",
                                "-9223372036854775807"};
    static const char *dims[] = {"S", "S+2", "2*S", "5"};
    static const int64_t steps[] = {1, 2, 3, -1, -2};
    int npos = sizeof pos / sizeof *pos;
    int64_t syms[8] = {0};
    int sidx = dim_sym_lookup(g->dims, "S");
    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
        for (int a = 0; a < npos; a++)
            for (int b = 0; b < npos; b++)
                for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
                    char type[32], sv[64], ev[64], stv[32];
                    snprintf(type, sizeof type, "f32[%s]", dims[di]);
                    snprintf(sv, sizeof sv, "[%s]", pos[a]);
                    snprintf(ev, sizeof ev, "[%s]", pos[b]);
                    snprintf(stv, sizeof stv, "[%" PRId64 "]", steps[k]);
                    Node *n = slice(type, sv, ev, NULL, stv);
                    cr_assert(ir_infer(g, n, diag), "slice %s %s %s %s: %s", type, sv, ev, stv,
                              diag_count(diag) ? diag_message(diag, 0, NULL, NULL) : "");
                    Node *x = n->in[0];
                    for (int64_t s = 0; s <= 11; s++) {
                        syms[sidx] = s;
                        int64_t d, st, en, got;
                        char e1[128];
                        cr_assert(dim_eval(g->dims, x->type.dim[0], syms, &d, NULL, 0));
                        cr_assert(dim_eval(g->dims, ir_attr(n, "starts")->dims[0], syms, &st, NULL, 0));
                        cr_assert(dim_eval(g->dims, ir_attr(n, "ends")->dims[0], syms, &en, NULL, 0));
                        cr_assert(dim_eval(g->dims, n->type.dim[0], syms, &got, e1, sizeof e1), "%s", e1);
                        int64_t want = onnx_len(d, st, en, steps[k]);
                        cr_assert_eq(got, want,
                                     "slice %s %s %s %s at S=%" PRId64 ": got %" PRId64
                                     " (%s), want %" PRId64,
                                     type, sv, ev, stv, s, got, ir_type_str(g, &n->type), want);
                    }
                }
}

Test(infer, slice_errors) {
    err(slice("f32[B,S]", "[0]", "[1]", "[2]", NULL), "slice: axis 2 is out of range for rank 2: f32[B,S]");
    err(slice("f32[B,S]", "[0,0]", "[1,1]", "[1,-1]", NULL), "slice: axes [1,-1] name axis 1 twice");
    err(slice("f32[B,S]", "[0]", "[1]", NULL, "[0]"), "slice: steps must be non-zero, got [0]");
    err(slice("f32[B,S]", "[0,0]", "[1]", NULL, NULL),
        "slice: starts, ends, axes and steps must have the same length, got 2, 1, 2 and 2");
    err(slice("f32[B]", "[0,0]", "[1,1]", NULL, NULL),
        "slice: starts has 2 entries but x has rank 1: f32[B]");
}

Test(infer, gather) {
    Node *n = op(OP_GATHER, 2, input("f32[V,768]"), input("i64[B,S]"));
    ok(n, "f32[B,S,768]");
    cr_assert_eq(ir_attr_int(n, "axis", -5), 0);
    n = op(OP_GATHER, 2, input("f32[B,S,768]"), input("i32"));
    set_int(n, "axis", 1);
    ok(n, "f32[B,768]");
    n = op(OP_GATHER, 2, input("f32[B,S,768]"), input("i32[4,2]"));
    set_int(n, "axis", -1);
    ok(n, "f32[B,S,4,2]");
    err(op(OP_GATHER, 2, input("f32[V,768]"), input("f32[B]")),
        "gather: indices must be i32 or i64, got f32[B]");
    n = op(OP_GATHER, 2, input("f32[V,768]"), input("i64[B]"));
    set_int(n, "axis", 2);
    err(n, "gather: axis 2 is out of range for rank 2: f32[V,768]");
}

Test(infer, unsqueeze_squeeze) {
    Node *n = op(OP_UNSQUEEZE, 1, input("f32[B,S]"));
    set_ints(n, "axes", "[1,-1]");
    ok(n, "f32[B,1,S,1]");
    n = op(OP_UNSQUEEZE, 1, input("f32"));
    set_ints(n, "axes", "[0]");
    ok(n, "f32[1]");
    n = op(OP_UNSQUEEZE, 1, input("f32[B,S]"));
    set_ints(n, "axes", "[4]");
    err(n, "unsqueeze: axis 4 is out of range for result rank 3: f32[B,S]");
    n = op(OP_SQUEEZE, 1, input("f32[B,1,S,1]"));
    ok(n, "f32[B,S]");
    has_ints(n, "axes", "[1,3]");
    n = op(OP_SQUEEZE, 1, input("f32[B,1,S,1]"));
    set_ints(n, "axes", "[-1]");
    ok(n, "f32[B,1,S]");
    n = op(OP_SQUEEZE, 1, input("f32[B,S,768]"));
    ok(n, "f32[B,S,768]");
    has_ints(n, "axes", "[]");
    n = op(OP_SQUEEZE, 1, input("f32[B,S,768]"));
    set_ints(n, "axes", "[1]");
    err(n, "squeeze: axis 1 of f32[B,S,768] has size S, not 1");
}

Test(infer, rank_limit) {
    Node *n = op(OP_UNSQUEEZE, 1, input("f32[B,S,2,2,2,2,2]"));
    set_ints(n, "axes", "[0,1]");
    err(n, "unsqueeze: result rank 9 exceeds the maximum of 8");
    n = op(OP_GATHER, 2, input("f32[2,2,2,2,2]"), input("i32[2,2,2,2,2]"));
    err(n, "gather: result rank 9 exceeds the maximum of 8");
    n = op(OP_RESHAPE, 1, input("f32[1]"));
    set_dims(n, "shape", "[1,1,1,1,1,1,1,1,1]");
    err(n, "reshape: shape [1,1,1,1,1,1,1,1,1] has 9 entries; at most 8 are supported");
}

Test(infer, dim_overflow) {
    Node *n = op(OP_CONCAT, 2, input("f32[9223372036854775807]"), input("f32[1]"));
    set_int(n, "axis", 0);
    err(n, "concat: dimension expression too large or complex");
    n = op(OP_RESHAPE, 1, input("f32[4611686018427387904,4]"));
    set_dims(n, "shape", "[-1]");
    err(n, "reshape: dimension expression too large or complex");
}

/* ---- convolution and pooling ---------------------------------------------------- */

Test(infer, conv2d) {
    Node *n = op(OP_CONV2D, 3, input("f32[N,3,224,224]"), input("f32[64,3,7,7]"), input("f32[64]"));
    set_ints(n, "stride", "[2,2]");
    set_ints(n, "padding", "[3,3,3,3]");
    ok(n, "f32[N,64,112,112]");
    has_ints(n, "dilation", "[1,1]");
    cr_assert_eq(ir_attr_int(n, "groups", 0), 1);
    n = op(OP_CONV2D, 3, input("f32[N,3,32,32]"), input("f32[8,3,3,3]"), NULL);
    ok(n, "f32[N,8,30,30]");
    has_ints(n, "stride", "[1,1]");
    has_ints(n, "padding", "[0,0,0,0]");
    /* asymmetric padding, dilation */
    n = op(OP_CONV2D, 3, input("f32[1,4,10,12]"), input("f32[4,4,3,3]"), NULL);
    set_ints(n, "padding", "[1,0,0,2]");
    set_ints(n, "dilation", "[2,3]");
    ok(n, "f32[1,4,7,8]");
    /* depthwise: groups == C */
    n = op(OP_CONV2D, 3, input("f16[N,32,56,56]"), input("f16[32,1,3,3]"), NULL);
    set_int(n, "groups", 32);
    set_ints(n, "padding", "[1,1,1,1]");
    ok(n, "f16[N,32,56,56]");
    n = op(OP_CONV2D, 3, input("f32[N,8,H,T]"), input("f32[16,4,3,3]"), NULL);
    set_int(n, "groups", 2);
    set_ints(n, "padding", "[1,1,1,1]");
    ok(n, "f32[N,16,H,T]");
    n = op(OP_CONV2D, 3, input("f32[N,3,H,T]"), input("f32[16,3,3,3]"), NULL);
    set_ints(n, "stride", "[2,2]");
    set_ints(n, "padding", "[1,1,1,1]");
    ok(n, "f32[N,16,floordiv(H-1, 2)+1,floordiv(T-1, 2)+1]");
    n = op(OP_CONV2D, 3, input("f32[N,3,2*H,2*T]"), input("f32[16,3,2,2]"), NULL);
    set_ints(n, "stride", "[2,2]");
    set_ints(n, "padding", "[0,0,1,1]");
    ok(n, "f32[N,16,H,T]");
}

/* Symbolic conv/pool output sizes agree with the integer formula. */
Test(infer, conv2d_symbolic_exact) {
    int h = dim_sym_lookup(g->dims, "H");
    for (int k = 1; k <= 3; k++)
        for (int stride = 1; stride <= 3; stride++)
            for (int pad = 0; pad <= 2; pad++)
                for (int dil = 1; dil <= 2; dil++) {
                    char w[32], st[16], pd[32], dl[16];
                    snprintf(w, sizeof w, "f32[4,2,%d,1]", k);
                    snprintf(st, sizeof st, "[%d,1]", stride);
                    snprintf(pd, sizeof pd, "[%d,0,%d,0]", pad, pad + 1);
                    snprintf(dl, sizeof dl, "[%d,1]", dil);
                    Node *n = op(OP_CONV2D, 3, input("f32[N,2,2*H+1,5]"), input(w), NULL);
                    set_ints(n, "stride", st);
                    set_ints(n, "padding", pd);
                    set_ints(n, "dilation", dl);
                    cr_assert(ir_infer(g, n, diag));
                    for (int64_t hv = 3; hv < 12; hv++) {
                        int64_t syms[8] = {0}, got, in = 2 * hv + 1;
                        syms[h] = hv;
                        int64_t want = (in + 2 * pad + 1 - dil * (k - 1) - 1) / stride + 1;
                        cr_assert(dim_eval(g->dims, n->type.dim[2], syms, &got, NULL, 0));
                        cr_assert_eq(got, want, "k=%d stride=%d pad=%d dil=%d H=%" PRId64 ": %s", k, stride,
                                     pad, dil, hv, ir_type_str(g, &n->type));
                    }
                }
}

Test(infer, conv2d_errors) {
    err(op(OP_CONV2D, 3, input("f32[N,3,32,32]"), input("f32[8,4,3,3]"), NULL),
        "conv2d: x has 3 channels but w expects 4 (4 per group, groups 1): f32[N,3,32,32], w f32[8,4,3,3]");
    Node *n = op(OP_CONV2D, 3, input("f32[N,6,32,32]"), input("f32[7,3,3,3]"), NULL);
    set_int(n, "groups", 2);
    err(n, "conv2d: 7 output channels are not divisible by groups 2: w f32[7,3,3,3]");
    err(op(OP_CONV2D, 3, input("f32[N,3,32,32]"), input("f32[8,3,3,3]"), input("f32[3]")),
        "conv2d: b f32[3] must be [8], the output channels of w f32[8,3,3,3]");
    err(op(OP_CONV2D, 3, input("f32[N,3,2,2]"), input("f32[8,3,3,3]"), NULL),
        "conv2d: output height would be 0: the window is larger than the padded input f32[N,3,2,2], w "
        "f32[8,3,3,3]");
    err(op(OP_CONV2D, 3, input("f32[3,32,32]"), input("f32[8,3,3,3]"), NULL),
        "conv2d: x must be 4-D [N,C,H,W], got f32[3,32,32]");
    err(op(OP_CONV2D, 3, input("i8[N,3,32,32]"), input("i8[8,3,3,3]"), NULL),
        "conv2d: expects a floating-point tensor, got i8[N,3,32,32]");
    n = op(OP_CONV2D, 3, input("f32[N,3,32,32]"), input("f32[8,3,3,3]"), NULL);
    set_ints(n, "stride", "[0,1]");
    err(n, "conv2d: stride must be 2 positive integers, got [0,1]");
    n = op(OP_CONV2D, 3, input("f32[N,3,32,32]"), input("f32[8,3,3,3]"), NULL);
    set_ints(n, "padding", "[1,1]");
    err(n, "conv2d: padding must be 4 non-negative integers [top, left, bottom, right], got [1,1]");
    n = op(OP_CONV2D, 3, input("f32[N,3,32,32]"), input("f32[8,3,3,3]"), NULL);
    set_int(n, "groups", 0);
    err(n, "conv2d: groups must be positive, got 0");
}

Test(infer, pools) {
    Node *n = op(OP_MAX_POOL2D, 1, input("f32[N,64,112,112]"));
    set_ints(n, "kernel", "[3,3]");
    set_ints(n, "stride", "[2,2]");
    set_ints(n, "padding", "[1,1,1,1]");
    ok(n, "f32[N,64,56,56]");
    n = op(OP_AVG_POOL2D, 1, input("f32[N,64,8,8]"));
    set_ints(n, "kernel", "[2,2]");
    ok(n, "f32[N,64,7,7]");
    has_ints(n, "stride", "[1,1]");
    has_ints(n, "padding", "[0,0,0,0]");
    n = op(OP_AVG_POOL2D, 1, input("f32[N,64,2*H,2*T]"));
    set_ints(n, "kernel", "[2,2]");
    set_ints(n, "stride", "[2,2]");
    ok(n, "f32[N,64,H,T]");
    n = op(OP_MAX_POOL2D, 1, input("f32[N,64,8,8]"));
    set_ints(n, "kernel", "[0,2]");
    err(n, "max_pool2d: kernel must be 2 positive integers [kh, kw], got [0,2]");
    err(op(OP_MAX_POOL2D, 1, input("f32[N,64,8,8]")), "max_pool2d: missing attribute 'kernel'");
    n = op(OP_MAX_POOL2D, 1, input("f32[N,64,8,8]"));
    set_ints(n, "kernel", "[9,9]");
    err(n, "max_pool2d: output height would be 0: the window is larger than the padded input f32[N,64,8,8]");
    ok(op(OP_GLOBAL_AVG_POOL, 1, input("bf16[N,2048,7,7]")), "bf16[N,2048,1,1]");
    err(op(OP_GLOBAL_AVG_POOL, 1, input("f32[N,2048]")),
        "global_avg_pool: x must be 4-D [N,C,H,W], got f32[N,2048]");
}

/* ---- attention ------------------------------------------------------------------- */

Test(infer, attention) {
    Node *q = input("f32[B,H,S,64]"), *k = input("f32[B,H,T,64]"), *v = input("f32[B,H,T,32]");
    ok(op(OP_ATTENTION, 5, q, k, v, NULL, NULL), "f32[B,H,S,32]");
    ok(op(OP_ATTENTION, 5, q, k, v, input("f32[B,1,1,T]"), NULL), "f32[B,H,S,32]");
    ok(op(OP_ATTENTION, 5, q, k, v, input("f32[S,T]"), input("f32")), "f32[B,H,S,32]");
    ok(op(OP_ATTENTION, 5, input("f16[B,H,S,64]"), input("f16[1,H,T,64]"), input("f16[T,64]"), NULL, NULL),
       "f16[B,H,S,64]");
    ok(op(OP_ATTENTION, 5, input("f32[S,64]"), input("f32[S,64]"), input("f32[S,64]"), NULL, NULL),
       "f32[S,64]");
}

Test(infer, attention_errors) {
    Node *q = input("f32[B,H,S,64]"), *k = input("f32[B,H,T,64]"), *v = input("f32[B,H,T,32]");
    err(op(OP_ATTENTION, 5, q, input("f32[B,H,T,32]"), v, NULL, NULL),
        "attention: q and k last dimensions differ: f32[B,H,S,64] and f32[B,H,T,32]");
    err(op(OP_ATTENTION, 5, q, k, input("f32[B,H,S,32]"), NULL, NULL),
        "attention: k and v sequence lengths differ: f32[B,H,T,64] and f32[B,H,S,32]");
    err(op(OP_ATTENTION, 5, q, k, v, input("f32[B,1,S,S]"), NULL),
        "attention: mask f32[B,1,S,S] does not broadcast to the scores shape [B,H,S,T]");
    err(op(OP_ATTENTION, 5, q, k, v, input("f32[N,B,H,S,T]"), NULL),
        "attention: mask f32[N,B,H,S,T] does not broadcast to the scores shape [B,H,S,T]");
    err(op(OP_ATTENTION, 5, q, input("f32[N,H,T,64]"), v, NULL, NULL),
        "attention: cannot broadcast batch dimensions: f32[B,H,S,64], f32[N,H,T,64], f32[B,H,T,32]");
    err(op(OP_ATTENTION, 5, q, k, v, input("f16[S,T]"), NULL),
        "attention: dtype mismatch: f32[B,H,S,64] and mask f16[S,T]");
    err(op(OP_ATTENTION, 5, input("f32[64]"), k, v, NULL, NULL),
        "attention: q, k and v must have rank >= 2: f32[64], f32[B,H,T,64], f32[B,H,T,32]");
    err(op(OP_ATTENTION, 5, input("i32[S,64]"), input("i32[S,64]"), input("i32[S,64]"), NULL, NULL),
        "attention: expects a floating-point tensor, got i32[S,64]");
}

/* ---- signature ----------------------------------------------------------------- */

Test(infer, signature_checks) {
    Node *n = op(OP_ADD, 2, input("f32[B]"), NULL);
    err(n, "add: missing operand 'b'");
    n = op(OP_ADD, 1, input("f32[B]"));
    err(n, "add: expects 2 operands, got 1");
    n = op(OP_SOFTMAX, 1, input("f32[B]"));
    set_int(n, "dim", 0);
    err(n, "softmax: unknown attribute 'dim'");
    n = op(OP_SOFTMAX, 1, input("f32[B]"));
    set_float(n, "axis", 0.5);
    err(n, "softmax: attribute 'axis' must be an integer");
    err(op(OP_CONCAT, 0), "concat: needs at least one tensor operand");
    /* sources keep the type they were given */
    Node *x = input("f32[B,S]");
    cr_assert(ir_infer(g, x, diag));
    cr_assert_str_eq(ir_type_str(g, &x->type), "f32[B,S]");
}
