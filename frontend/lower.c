/* Lowering: the AST of one file to the graph IR.
 *
 * One pass over the model's statements in order (every name is defined before
 * it is used).  Expressions evaluate to a `Val`, which is either a graph node or
 * a *weak* compile-time value: a number literal or an integer expression of
 * dims.  Weak values fold among themselves (`2*3`, `S*2`) and take the dtype of
 * the other operand when they meet a tensor (spec section 4); with no tensor in
 * sight they default to f32.  `fn` bodies are inlined at each call in a fresh
 * scope that sees the parameters, the body's own lets and the model's dims;
 * recursion is detected with the stack of functions being inlined.
 *
 * Operator calls are bound against the operator's schema (ir/ir.c): positional
 * arguments fill parameters in order, named ones by name; tensor parameters
 * become operands, the others attributes evaluated at compile time.  Then
 * ir_infer checks the node and computes its type.  Errors are reported and
 * lowering continues where it can, so one run reports every mistake; a failed
 * expression yields an invalid Val that silences errors depending on it. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ir/assert.h"
#include "../ir/strmap.h"
#include "frontend.h"

enum { MAX_DEPTH = 1000, MAX_FN_NESTING = 256 };

typedef enum { V_ERR, V_NODE, V_NUM, V_DIM } ValKind;

typedef struct {
    ValKind kind;
    Node *node;  /* V_NODE */
    double num;  /* V_NUM */
    bool is_int; /* V_NUM: integer-valued literal arithmetic, exactly `ival` */
    int64_t ival;
    DimId dim;   /* V_DIM: integer expression of dims */
} Val;

static const Val ERR = {V_ERR, NULL, 0, false, 0, DIM_INVALID};

/* What a name refers to. */
typedef enum { B_DIM, B_VAL } BindKind;
typedef struct {
    BindKind kind;
    int sym; /* B_DIM */
    Val val; /* B_VAL */
    Loc loc;
} Binding;

typedef struct Scope {
    StrMap names;
    struct Scope *dims; /* fn scopes fall back to the model's dims only */
} Scope;

typedef struct {
    Arena *arena;
    Diag *d;
    Graph *g;
    const AstFile *ast;
    StrMap fns;
    const FnDef *stack[MAX_FN_NESTING]; /* fns being inlined, for recursion errors */
    int nstack;
    bool too_big;
} Lower;

/* ---- scopes --------------------------------------------------------------- */

static Binding *lookup(const Scope *s, const char *name) {
    Binding *b = strmap_get(&s->names, name);
    if (!b && s->dims) {
        b = strmap_get(&s->dims->names, name);
        if (b && b->kind != B_DIM) b = NULL;
    }
    return b;
}

/* Binds a new name; reports a redefinition and returns false if taken. */
static bool bind(Lower *L, Scope *s, const char *name, Loc loc, Binding b) {
    Binding *old = strmap_get(&s->names, name);
    if (old) {
        diag_error(L->d, loc, "redefinition of '%s'", name);
        if (old->loc.line) diag_note(L->d, old->loc, "'%s' was first defined here", name);
        return false;
    }
    Binding *nb = arena_alloc(L->arena, sizeof *nb);
    *nb = b;
    nb->loc = loc;
    strmap_put(&s->names, name, nb);
    return true;
}

/* ---- nodes ---------------------------------------------------------------- */

static bool room(Lower *L, Loc loc) {
    if (L->g->nnodes < FE_MAX_NODES) return true;
    if (!L->too_big)
        diag_error(L->d, loc, "model too large: more than %d operations after inlining", FE_MAX_NODES);
    L->too_big = true;
    return false;
}

static Node *make_const(Lower *L, Val v, DType dt, Loc loc) {
    if (!room(L, loc)) return NULL;
    if (v.kind == V_NUM && dt != DT_BOOL && !dtype_is_float(dt) && v.num != floor(v.num)) {
        char buf[64];
        ir_format_double(v.num, buf, sizeof buf);
        diag_error(L->d, loc, "number %s is not an integer and cannot take dtype %s", buf, dtype_name(dt));
        return NULL;
    }
    if (v.kind == V_NUM && dt == DT_BOOL && v.num != 0 && v.num != 1) {
        diag_error(L->d, loc, "number %g cannot take dtype bool (only 0 and 1)", v.num);
        return NULL;
    }
    Node *n = ir_node_create(L->g, OP_CONST, 0, loc);
    n->type.dtype = dt;
    n->type.rank = 0;
    if (v.kind == V_DIM)
        n->dval = v.dim;
    else
        n->fval = v.num;
    ir_append(L->g, n);
    return n;
}

/* A node for v: weak values become constants of dtype dt. */
static Node *materialize(Lower *L, Val v, DType dt, Loc loc) {
    switch (v.kind) {
    case V_NODE: return v.node;
    case V_NUM:
    case V_DIM: return make_const(L, v, dt, loc);
    default: return NULL;
    }
}

static Val node_val(Node *n) {
    Val v = ERR;
    if (n) {
        v.kind = V_NODE;
        v.node = n;
    }
    return v;
}

/* ---- compile-time scalars --------------------------------------------------- */

static const char *expr_what(const Expr *e) {
    switch (e->kind) {
    case EX_STRING: return "a string";
    case EX_BOOL: return "a boolean";
    case EX_DTYPE: return "a dtype";
    case EX_LIST: return "a list";
    case EX_CALL: return "an operator call";
    default: return "an expression";
    }
}

static Val fold(Lower *L, char op, Val a, Val b, Loc loc);

/* Evaluates a compile-time scalar: literals and dims with + - * /. */
static Val eval_scalar(Lower *L, const Scope *s, const Expr *e, const char *what) {
    switch (e->kind) {
    case EX_NUM:
        if (e->num.is_int && e->num.overflow) {
            diag_error(L->d, e->loc, "integer %.40s%s is too large", e->num.text, strlen(e->num.text) > 40 ? "..." : "");
            return ERR;
        }
        return (Val){V_NUM, NULL, e->num.value, e->num.is_int, e->num.ival, DIM_INVALID};
    case EX_NAME: {
        Binding *b = lookup(s, e->name);
        if (!b) {
            diag_error(L->d, e->loc, "unknown dim '%s'", e->name);
            return ERR;
        }
        if (b->kind == B_DIM) return (Val){V_DIM, NULL, 0, true, 0, dim_sym(L->g->dims, b->sym)};
        if (b->val.kind == V_NUM || b->val.kind == V_DIM) return b->val;
        if (b->val.kind == V_ERR) return ERR;
        diag_error(L->d, e->loc, "'%s' is a tensor, but %s must be a compile-time value", e->name, what);
        return ERR;
    }
    case EX_NEG: {
        Val v = eval_scalar(L, s, e->operand, what);
        return fold(L, '-', (Val){V_NUM, NULL, 0, true, 0, DIM_INVALID}, v, e->loc);
    }
    case EX_BIN: {
        Val a = eval_scalar(L, s, e->bin.lhs, what), b = eval_scalar(L, s, e->bin.rhs, what);
        return fold(L, e->bin.op, a, b, e->loc);
    }
    default:
        diag_error(L->d, e->loc, "%s must be a number or dim expression, not %s", what, expr_what(e));
        return ERR;
    }
}

static DimId val_dim(Lower *L, Val v) {
    if (v.kind == V_DIM) return v.dim;
    if (v.kind == V_NUM && v.is_int) return dim_const(L->g->dims, v.ival);
    return DIM_INVALID;
}

/* Folds two weak values.  Numbers fold in double; as soon as a dim is
 * involved the arithmetic is exact integer arithmetic on dim expressions. */
static Val fold(Lower *L, char op, Val a, Val b, Loc loc) {
    if (a.kind == V_ERR || b.kind == V_ERR) return ERR;
    DSC_ASSERT(a.kind != V_NODE && b.kind != V_NODE);
    if (a.kind == V_NUM && b.kind == V_NUM) {
        Val r = {V_NUM, NULL, 0, a.is_int && b.is_int, 0, DIM_INVALID};
        bool ovf = false;
        switch (op) {
        case '+': r.num = a.num + b.num; ovf = __builtin_add_overflow(a.ival, b.ival, &r.ival); break;
        case '-': r.num = a.num - b.num; ovf = __builtin_sub_overflow(a.ival, b.ival, &r.ival); break;
        case '*': r.num = a.num * b.num; ovf = __builtin_mul_overflow(a.ival, b.ival, &r.ival); break;
        default:
            r.num = a.num / b.num;
            ovf = b.ival == 0 || (a.ival == INT64_MIN && b.ival == -1) || a.ival % b.ival != 0;
            if (!ovf) r.ival = a.ival / b.ival;
            break;
        }
        if (ovf) r.is_int = false; /* leaves exact integers: continue in double */
        return r;
    }
    DimId x = val_dim(L, a), y = val_dim(L, b);
    if (x == DIM_INVALID || y == DIM_INVALID) {
        diag_error(L->d, loc, "dim expressions take only integers, not a fractional number");
        return ERR;
    }
    DimTable *t = L->g->dims;
    int64_t c;
    if (op == '/' && dim_is_const(t, y, &c) && c == 0) {
        diag_error(L->d, loc, "division by zero in a dim expression");
        return ERR;
    }
    DimId r = op == '+' ? dim_add(t, x, y) : op == '-' ? dim_sub(t, x, y) : op == '*' ? dim_mul(t, x, y)
                                                                           : dim_div(t, x, y);
    if (r == DIM_INVALID) {
        if (op == '/')
            diag_error(L->d, loc, "dim expression %s/%s is not an exact division", dim_str(t, x, L->arena),
                       dim_str(t, y, L->arena));
        else
            diag_error(L->d, loc, "dim expression too large or too complex");
        return ERR;
    }
    return (Val){V_DIM, NULL, 0, true, 0, r};
}

/* An integer-valued compile-time scalar as a DimId; reports non-integers. */
static DimId eval_dim(Lower *L, const Scope *s, const Expr *e, const char *what) {
    Val v = eval_scalar(L, s, e, what);
    if (v.kind == V_ERR) return DIM_INVALID;
    DimId d = val_dim(L, v);
    if (d == DIM_INVALID) {
        char buf[64];
        ir_format_double(v.num, buf, sizeof buf);
        diag_error(L->d, e->loc, "%s must be an integer, not %s", what, buf);
    }
    return d;
}

static bool eval_int(Lower *L, const Scope *s, const Expr *e, const char *what, int64_t *out) {
    DimId d = eval_dim(L, s, e, what);
    if (d == DIM_INVALID) return false;
    if (!dim_is_const(L->g->dims, d, out)) {
        diag_error(L->d, e->loc, "%s must be a constant integer, not %s", what, dim_str(L->g->dims, d, L->arena));
        return false;
    }
    return true;
}

/* ---- types ---------------------------------------------------------------- */

static bool lower_type(Lower *L, const Scope *s, const AstType *at, Type *out) {
    if (!at->valid) return false;
    *out = (Type){.dtype = at->dtype};
    if (at->rank > IR_MAX_RANK) {
        diag_error(L->d, at->loc, "rank %d is larger than the supported maximum %d", at->rank, IR_MAX_RANK);
        return false;
    }
    bool ok = true;
    int i = 0;
    for (const Expr *e = at->dims; e; e = e->next, i++) {
        DimId d = eval_dim(L, s, e, "a shape entry");
        int64_t c;
        if (d == DIM_INVALID) {
            ok = false;
        } else if (dim_is_const(L->g->dims, d, &c) && c < 0) {
            diag_error(L->d, e->loc, "shape entry %lld is negative", (long long)c);
            ok = false;
        }
        out->dim[i] = d;
    }
    out->rank = i;
    return ok;
}

/* ---- hints (@attributes) -------------------------------------------------- */

static bool value_attr(Lower *L, const Scope *s, const Expr *e, Attr *a, const char *what);

/* @group(id=N, kind="...", reason="...") and @buffer(id=N). */
static bool check_plan_hint(Lower *L, const Hint *h) {
    bool group = strcmp(h->name, "group") == 0, have_id = false;
    for (int i = 0; i < h->nargs; i++) {
        const Attr *v = &h->args[i];
        const char *key = v->name ? v->name : "";
        GroupKind k;
        if (strcmp(key, "id") == 0 && v->kind == AV_INT && v->i >= 0 && v->i < (1 << 30)) {
            have_id = true;
        } else if (group && strcmp(key, "kind") == 0 && v->kind == AV_STRING && ir_group_kind_from_name(v->s, &k)) {
        } else if (group && strcmp(key, "reason") == 0 && v->kind == AV_STRING) {
        } else {
            diag_error(L->d, v->loc, "@%s: bad argument%s%s", h->name, v->name ? " " : "", key);
            return false;
        }
    }
    if (!have_id) diag_error(L->d, h->loc, "@%s needs id=N", h->name);
    return have_id;
}

/* Rebuilds fusion groups and buffers from @group / @buffer hints (in the
 * order groups first appear, so ids are dense). */
static void restore_plan(Lower *L) {
    Graph *g = L->g;
    StrMap ids;
    strmap_init(&ids, L->arena);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        const Hint *gh = ir_hint(n, "group"), *bh = ir_hint(n, "buffer");
        if (bh) n->ann.buffer = (int)ir_hint_arg(bh, "id")->i; /* check_plan_hint made sure it is there */
        if (!gh) continue;
        const Attr *kind = ir_hint_arg(gh, "kind"), *reason = ir_hint_arg(gh, "reason");
        const char *key = arena_printf(L->arena, "%lld", (long long)ir_hint_arg(gh, "id")->i);
        Group *grp = strmap_get(&ids, key);
        if (!grp) {
            GroupKind k = GK_SINGLE;
            if (kind) ir_group_kind_from_name(kind->s, &k);
            grp = ir_group_create(g, k, reason ? reason->s : "");
            strmap_put(&ids, key, grp);
        }
        ir_group_add(g, grp, n);
    }
    ir_buffers_rebuild(g);
}

static void lower_hints(Lower *L, const Scope *s, const AstAttr *list, Node *n, StmtKind where) {
    for (const AstAttr *h = list; h; h = h->next) {
        Hint hint = {.name = h->name, .loc = h->loc};
        for (const Arg *a = h->args; a; a = a->next) hint.nargs++;
        hint.args = arena_alloc(L->arena, sizeof(Attr) * (size_t)(hint.nargs ? hint.nargs : 1));
        bool ok = true;
        int i = 0;
        for (const Arg *a = h->args; a; a = a->next, i++) {
            hint.args[i].name = a->name;
            hint.args[i].loc = a->loc;
            ok &= value_attr(L, s, a->value, &hint.args[i], "an attribute value");
        }
        if (!ok) continue;
        if (strcmp(h->name, "precision") == 0) {
            const Attr *v = hint.nargs == 1 ? &hint.args[0] : NULL;
            if (!v || (v->name && strcmp(v->name, "dtype") != 0) || v->kind != AV_DTYPE) {
                diag_error(L->d, h->loc, "@precision takes one dtype, e.g. @precision(f16)");
                continue;
            }
            if (v->dt != DT_F32 && v->dt != DT_F16 && v->dt != DT_BF16 && v->dt != DT_I8) {
                diag_error(L->d, v->loc, "@precision: %s is not a compute precision (f32, f16, bf16, i8)",
                           dtype_name(v->dt));
                continue;
            }
            if (where != ST_LET && where != ST_OUTPUT) {
                diag_warning(L->d, h->loc, "@precision applies to let and output; ignored here");
                continue;
            }
            hint.args[0].name = "dtype";
        } else if (strcmp(h->name, "sparse") == 0) {
            bool good = true;
            for (i = 0; i < hint.nargs; i++) {
                const Attr *v = &hint.args[i];
                if (v->name && strcmp(v->name, "block") == 0) {
                    if (v->kind != AV_INTS || v->n != 2 || v->ints[0] <= 0 || v->ints[1] <= 0) {
                        diag_error(L->d, v->loc, "@sparse: block must be two positive integers, e.g. block=[4, 4]");
                        good = false;
                    }
                } else if (v->name && strcmp(v->name, "density") == 0) {
                    double dv = v->kind == AV_FLOAT ? v->f : v->kind == AV_INT ? (double)v->i : -1;
                    if ((v->kind != AV_FLOAT && v->kind != AV_INT) || !(dv >= 0 && dv <= 1)) {
                        diag_error(L->d, v->loc, "@sparse: density must be a number in [0, 1]");
                        good = false;
                    }
                } else {
                    diag_error(L->d, v->loc, "@sparse: unknown argument%s%s (expected block, density)",
                               v->name ? " " : "", v->name ? v->name : "");
                    good = false;
                }
            }
            if (!good) continue;
            if (where != ST_PARAM) {
                diag_warning(L->d, h->loc, "@sparse applies to params; ignored here");
                continue;
            }
        } else if (strcmp(h->name, "group") == 0 || strcmp(h->name, "buffer") == 0) {
            /* written by the passes into dumps: read back so a dump compiles to the same plan */
            if (!check_plan_hint(L, &hint)) continue;
            if (where != ST_LET && where != ST_OUTPUT) {
                diag_warning(L->d, h->loc, "@%s applies to computed values; ignored here", h->name);
                continue;
            }
        } else {
            diag_warning(L->d, h->loc, "unknown attribute '@%s' (ignored)", h->name);
        }
        if (!n) continue;
        n->hints = arena_grow(L->arena, n->hints, sizeof(Hint) * (size_t)n->nhints,
                              sizeof(Hint) * (size_t)(n->nhints + 1));
        n->hints[n->nhints++] = hint;
    }
}

/* Converts a value expression (number, dim expression, string, bool, dtype or
 * list of numbers / dim expressions) to an attribute, choosing the kind from the
 * value.  Used for hints; operator attributes go through bind_attr. */
static bool value_attr(Lower *L, const Scope *s, const Expr *e, Attr *a, const char *what) {
    a->loc = e->loc;
    switch (e->kind) {
    case EX_STRING: a->kind = AV_STRING; a->s = e->str; return true;
    case EX_BOOL: a->kind = AV_BOOL; a->b = e->boolean; return true;
    case EX_DTYPE: a->kind = AV_DTYPE; a->dt = e->dtype; return true;
    case EX_LIST: {
        a->kind = AV_INTS;
        a->n = e->list.n;
        a->ints = arena_alloc(L->arena, sizeof(int64_t) * (size_t)(a->n ? a->n : 1));
        int i = 0;
        for (const Expr *x = e->list.items; x; x = x->next, i++)
            if (!eval_int(L, s, x, what, &a->ints[i])) return false;
        return true;
    }
    default: {
        Val v = eval_scalar(L, s, e, what);
        if (v.kind == V_ERR) return false;
        int64_t c;
        if (v.kind == V_NUM && !v.is_int) {
            a->kind = AV_FLOAT;
            a->f = v.num;
        } else if (dim_is_const(L->g->dims, val_dim(L, v), &c)) {
            a->kind = AV_INT;
            a->i = c;
        } else {
            diag_error(L->d, e->loc, "%s must be a constant", what);
            return false;
        }
        return true;
    }
    }
}

/* ---- operator calls --------------------------------------------------------- */

static Val eval(Lower *L, Scope *s, const Expr *e, int depth);

static const char *kind_name(ParamKind k) {
    static const char *names[] = {"a tensor", "an integer", "a number", "a string",
                                  "true or false", "a dtype", "a list of integers", "a list of dims"};
    return names[k];
}

/* Evaluates an operator attribute of kind k into a. */
static bool bind_attr(Lower *L, Scope *s, const char *op, const OpParam *p, const Expr *e, Attr *a) {
    char what[96];
    snprintf(what, sizeof what, "%s: '%s'", op, p->name);
    a->loc = e->loc;
    switch (p->kind) {
    case PK_INT:
        a->kind = AV_INT;
        return eval_int(L, s, e, what, &a->i);
    case PK_FLOAT: {
        if (e->kind == EX_NUM || e->kind == EX_NEG || e->kind == EX_BIN || e->kind == EX_NAME) {
            Val v = eval_scalar(L, s, e, what);
            if (v.kind == V_ERR) return false;
            if (v.kind == V_DIM) {
                int64_t c;
                if (!dim_is_const(L->g->dims, v.dim, &c)) {
                    diag_error(L->d, e->loc, "%s must be a constant number", what);
                    return false;
                }
                v.num = (double)c;
            }
            a->kind = AV_FLOAT;
            a->f = v.num;
            return true;
        }
        break;
    }
    case PK_STRING:
        if (e->kind == EX_STRING) {
            a->kind = AV_STRING;
            a->s = e->str;
            return true;
        }
        break;
    case PK_BOOL:
        if (e->kind == EX_BOOL) {
            a->kind = AV_BOOL;
            a->b = e->boolean;
            return true;
        }
        break;
    case PK_DTYPE:
        if (e->kind == EX_DTYPE) {
            a->kind = AV_DTYPE;
            a->dt = e->dtype;
            return true;
        }
        if (e->kind == EX_NAME && !strchr(e->name, '.') && !lookup(s, e->name)) {
            diag_error(L->d, e->loc, "unknown dtype '%s'", e->name);
            return false;
        }
        break;
    case PK_INTS:
    case PK_DIMS: {
        const Expr *items = e->kind == EX_LIST ? e->list.items : e;
        int n = e->kind == EX_LIST ? e->list.n : 1;
        if (e->kind == EX_STRING || e->kind == EX_BOOL || e->kind == EX_DTYPE || e->kind == EX_CALL) break;
        a->n = n;
        bool ok = true;
        if (p->kind == PK_INTS) {
            a->kind = AV_INTS;
            a->ints = arena_alloc(L->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
            int i = 0;
            for (const Expr *x = items; x && i < n; x = x->next, i++) {
                if (x->kind == EX_LIST) {
                    diag_error(L->d, x->loc, "%s must be a flat list of integers", what);
                    return false;
                }
                ok &= eval_int(L, s, x, what, &a->ints[i]);
            }
        } else {
            a->kind = AV_DIMS;
            a->dims = arena_alloc(L->arena, sizeof(DimId) * (size_t)(n ? n : 1));
            int i = 0;
            for (const Expr *x = items; x && i < n; x = x->next, i++) {
                if (x->kind == EX_LIST) {
                    diag_error(L->d, x->loc, "%s must be a flat list", what);
                    return false;
                }
                a->dims[i] = eval_dim(L, s, x, what);
                ok &= a->dims[i] != DIM_INVALID;
            }
        }
        return ok;
    }
    default: break;
    }
    diag_error(L->d, e->loc, "%s must be %s, not %s", what, kind_name(p->kind), expr_what(e));
    return false;
}

static void list_params(const OpSchema *sc, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    if (sc->variadic) len += (size_t)snprintf(buf, n, "tensors...");
    for (int i = 0; i < sc->nparams && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? ", " : "", sc->params[i].name);
}

static Val call_op(Lower *L, Scope *s, const Expr *e, OpKind op, int depth) {
    const OpSchema *sc = ir_op_schema(op);
    const char *name = sc->name;
    const Expr *given[IR_MAX_PARAMS] = {0};
    int ntensors_variadic = 0;
    bool ok = true, named_seen = false;
    int pos = 0;
    /* Pass 1: match arguments to parameters. */
    for (const Arg *a = e->call.args; a; a = a->next) {
        if (!a->name) {
            if (named_seen) {
                diag_error(L->d, a->loc, "%s: positional argument after a named argument", name);
                ok = false;
                continue;
            }
            if (sc->variadic) {
                ntensors_variadic++;
                continue;
            }
            if (pos >= sc->nparams) {
                int total = 0;
                for (const Arg *b = e->call.args; b; b = b->next) total += !b->name;
                diag_error(L->d, a->loc, "%s: too many arguments: takes at most %d, got %d", name, sc->nparams,
                           total);
                ok = false;
                break;
            }
            given[pos++] = a->value;
            continue;
        }
        named_seen = true;
        int k = -1;
        for (int i = 0; i < sc->nparams; i++)
            if (strcmp(sc->params[i].name, a->name) == 0) k = i;
        if (k < 0) {
            char buf[200];
            list_params(sc, buf, sizeof buf);
            diag_error(L->d, a->loc, "%s: unknown argument '%s' (expected: %s)", name, a->name, buf);
            ok = false;
            continue;
        }
        if (given[k]) {
            diag_error(L->d, a->loc, "%s: argument '%s' given twice", name, a->name);
            ok = false;
            continue;
        }
        given[k] = a->value;
    }
    if (sc->variadic && ntensors_variadic == 0) {
        diag_error(L->d, e->loc, "%s: needs at least one tensor", name);
        ok = false;
    }
    for (int i = 0; i < sc->nparams; i++)
        if (sc->params[i].required && !given[i]) {
            diag_error(L->d, e->loc, "%s: missing argument '%s'", name, sc->params[i].name);
            ok = false;
        }
    /* Pass 2: evaluate operands (all of them, so nested errors are reported). */
    int nin = sc->variadic ? ntensors_variadic : ir_op_tensor_params(op);
    Val *vals = arena_alloc(L->arena, sizeof(Val) * (size_t)(nin ? nin : 1));
    const Expr **vexprs = arena_alloc(L->arena, sizeof(Expr *) * (size_t)(nin ? nin : 1));
    if (sc->variadic) {
        int k = 0;
        for (const Arg *a = e->call.args; a; a = a->next)
            if (!a->name && k < nin) {
                vexprs[k] = a->value;
                vals[k] = eval(L, s, a->value, depth + 1);
                ok &= vals[k++].kind != V_ERR;
            }
    } else {
        int k = 0;
        for (int i = 0; i < sc->nparams; i++) {
            if (sc->params[i].kind != PK_TENSOR) continue;
            vals[k] = ERR;
            vexprs[k] = given[i];
            if (given[i]) {
                const Expr *x = given[i];
                if (x->kind == EX_STRING || x->kind == EX_BOOL || x->kind == EX_DTYPE || x->kind == EX_LIST) {
                    diag_error(L->d, x->loc, "%s: '%s' must be a tensor, not %s", name, sc->params[i].name,
                               expr_what(x));
                    ok = false;
                } else {
                    vals[k] = eval(L, s, x, depth + 1);
                    ok &= vals[k].kind != V_ERR;
                }
            }
            k++;
        }
    }
    Node *n = ir_node_create(L->g, op, nin, e->loc);
    for (int i = 0; i < sc->nparams; i++) {
        if (sc->params[i].kind == PK_TENSOR || !given[i]) continue;
        Attr a = {0};
        if (bind_attr(L, s, name, &sc->params[i], given[i], &a)) {
            Attr *dst = ir_attr_set(L->g, n, sc->params[i].name, a.kind, a.loc);
            const char *nm = dst->name;
            *dst = a;
            dst->name = nm;
        } else {
            ok = false;
        }
    }
    if (!ok) return ERR;
    /* Weak operands take the dtype of the tensor operands (spec section 4). */
    DType ctx = DT_F32;
    bool have_ctx = false;
    for (int i = 0; i < nin && !have_ctx; i++) {
        if ((op == OP_WHERE && i == 0) || (op == OP_GATHER && i == 1)) continue;
        if (vals[i].kind == V_NODE) {
            ctx = vals[i].node->type.dtype;
            have_ctx = true;
        }
    }
    for (int i = 0; i < nin; i++) {
        if (!vexprs[i]) continue;
        DType dt = op == OP_GATHER && i == 1 ? DT_I64 : op == OP_WHERE && i == 0 ? DT_BOOL : ctx;
        n->in[i] = materialize(L, vals[i], dt, vexprs[i]->loc);
        if (!n->in[i]) return ERR;
    }
    if (!room(L, e->loc)) return ERR;
    if (!ir_infer(L->g, n, L->d)) return ERR;
    ir_append(L->g, n);
    return node_val(n);
}

static Val call_fn(Lower *L, Scope *s, const Expr *e, const FnDef *fn, int depth) {
    for (int i = 0; i < L->nstack; i++) {
        if (L->stack[i] != fn) continue;
        char chain[512];
        size_t len = 0;
        for (int j = i; j < L->nstack && len < sizeof chain; j++)
            len += (size_t)snprintf(chain + len, sizeof chain - len, "%s -> ", L->stack[j]->name);
        if (len < sizeof chain) snprintf(chain + len, sizeof chain - len, "%s", fn->name);
        diag_error(L->d, e->loc, "recursive call of fn '%s' (%s); fn bodies are inlined, so recursion is not allowed",
                   fn->name, chain);
        return ERR;
    }
    int nargs = 0;
    bool ok = true;
    for (const Arg *a = e->call.args; a; a = a->next) {
        if (a->name) {
            diag_error(L->d, a->loc, "fn '%s' takes positional arguments only", fn->name);
            ok = false;
        }
        nargs++;
    }
    if (nargs != fn->nparams) {
        diag_error(L->d, e->loc, "fn '%s' takes %d argument%s, got %d", fn->name, fn->nparams,
                   fn->nparams == 1 ? "" : "s", nargs);
        return ERR;
    }
    if (!ok) return ERR;
    Scope inner = {.dims = s->dims ? s->dims : s};
    strmap_init(&inner.names, L->arena);
    const FnParam *p = fn->params;
    for (const Arg *a = e->call.args; a; a = a->next, p = p->next) {
        Val v = eval(L, s, a->value, depth + 1);
        if (v.kind == V_ERR) ok = false;
        bind(L, &inner, p->name, p->loc, (Binding){B_VAL, -1, v, p->loc});
    }
    if (!ok) return ERR;
    if (L->nstack == MAX_FN_NESTING) {
        diag_error(L->d, e->loc, "fn calls nested more than %d deep", MAX_FN_NESTING);
        return ERR;
    }
    L->stack[L->nstack++] = fn;
    Val r = ERR;
    for (const Stmt *st = fn->body; st; st = st->next) {
        Val v = eval(L, &inner, st->value, depth + 1);
        if (bind(L, &inner, st->name, st->name_loc, (Binding){B_VAL, -1, v, st->name_loc}) && v.kind == V_ERR)
            ok = false;
    }
    if (ok) r = eval(L, &inner, fn->ret, depth + 1);
    L->nstack--;
    return r;
}

static Val binary(Lower *L, OpKind op, Val a, Val b, Loc loc) {
    DType dt = a.kind == V_NODE ? a.node->type.dtype : b.kind == V_NODE ? b.node->type.dtype : DT_F32;
    Node *n = ir_node_create(L->g, op, 2, loc);
    n->in[0] = materialize(L, a, dt, loc);
    n->in[1] = materialize(L, b, dt, loc);
    if (!n->in[0] || !n->in[1] || !room(L, loc) || !ir_infer(L->g, n, L->d)) return ERR;
    ir_append(L->g, n);
    return node_val(n);
}

static Val eval(Lower *L, Scope *s, const Expr *e, int depth) {
    if (depth > MAX_DEPTH) {
        diag_error(L->d, e->loc, "expression nested too deeply (more than %d levels)", MAX_DEPTH);
        return ERR;
    }
    if (L->too_big) return ERR;
    switch (e->kind) {
    case EX_NUM:
    case EX_NAME:
        if (e->kind == EX_NAME) {
            Binding *b = lookup(s, e->name);
            if (!b) {
                diag_error(L->d, e->loc, "unknown name '%s'", e->name);
                return ERR;
            }
            if (b->kind == B_DIM) return (Val){V_DIM, NULL, 0, true, 0, dim_sym(L->g->dims, b->sym)};
            return b->val;
        }
        return eval_scalar(L, s, e, "a number");
    case EX_NEG: {
        Val v = eval(L, s, e->operand, depth + 1);
        if (v.kind == V_ERR) return ERR;
        if (v.kind != V_NODE) return fold(L, '-', (Val){V_NUM, NULL, 0, true, 0, DIM_INVALID}, v, e->loc);
        Node *n = ir_node_create(L->g, OP_NEG, 1, e->loc);
        n->in[0] = v.node;
        if (!room(L, e->loc) || !ir_infer(L->g, n, L->d)) return ERR;
        ir_append(L->g, n);
        return node_val(n);
    }
    case EX_BIN: {
        Val a = eval(L, s, e->bin.lhs, depth + 1), b = eval(L, s, e->bin.rhs, depth + 1);
        if (a.kind == V_ERR || b.kind == V_ERR) return ERR;
        if (a.kind != V_NODE && b.kind != V_NODE) {
            if ((a.kind == V_NUM && !a.is_int && b.kind == V_DIM) || (b.kind == V_NUM && !b.is_int && a.kind == V_DIM))
                ; /* a dim meets a fraction: compute at run time as f32 tensors */
            else
                return fold(L, e->bin.op, a, b, e->loc);
        }
        OpKind op = e->bin.op == '+' ? OP_ADD : e->bin.op == '-' ? OP_SUB : e->bin.op == '*' ? OP_MUL : OP_DIV;
        return binary(L, op, a, b, e->loc);
    }
    case EX_CALL: {
        const FnDef *fn = strmap_get(&L->fns, e->call.callee);
        if (fn) return call_fn(L, s, e, fn, depth);
        OpKind op;
        if (ir_op_lookup(e->call.callee, &op)) return call_op(L, s, e, op, depth);
        diag_error(L->d, e->loc, "unknown operator or fn '%s'", e->call.callee);
        return ERR;
    }
    default:
        diag_error(L->d, e->loc, "%s cannot be used as a tensor", expr_what(e));
        return ERR;
    }
}

/* ---- statements ------------------------------------------------------------- */

/* Names a fresh node after the let/output that defines it; an alias (the value
 * of an existing name) keeps its name. */
static Node *name_value(Lower *L, Val *v, const char *name, Loc loc) {
    if (v->kind == V_NUM || v->kind == V_DIM) return NULL;
    if (v->kind != V_NODE) return NULL;
    (void)L;
    (void)loc;
    if (!v->node->name && v->node->op != OP_CONST) v->node->name = name;
    return v->node;
}

static void lower_model(Lower *L, Scope *s) {
    Graph *g = L->g;
    bool have_weights = false;
    StrMap outputs;
    strmap_init(&outputs, L->arena);
    for (const Stmt *st = L->ast->stmts; st && !L->too_big; st = st->next) {
        switch (st->kind) {
        case ST_WEIGHTS:
            if (have_weights) {
                diag_error(L->d, st->loc, "duplicate 'weights' statement (the model already names \"%s\")",
                           g->weights);
                break;
            }
            have_weights = true;
            g->weights = st->str;
            g->weights_loc = st->str_loc;
            break;
        case ST_DIM: {
            int64_t bound = -1;
            if (st->bound) {
                if (st->bound->kind != EX_NUM || !st->bound->num.is_int || st->bound->num.overflow) {
                    diag_error(L->d, st->bound->loc, "the bound of dim '%s' must be a non-negative integer",
                               st->name);
                    break;
                }
                bound = st->bound->num.ival;
            }
            if (strmap_get(&s->names, st->name)) {
                bind(L, s, st->name, st->name_loc, (Binding){0}); /* reports the redefinition */
                break;
            }
            int sym = dim_declare(g->dims, st->name, bound, st->name_loc);
            bind(L, s, st->name, st->name_loc, (Binding){B_DIM, sym, ERR, st->name_loc});
            break;
        }
        case ST_INPUT:
        case ST_PARAM: {
            Type t;
            bool ok = lower_type(L, s, &st->type, &t);
            Node *n = NULL;
            if (ok && room(L, st->loc)) {
                n = ir_node_create(g, st->kind == ST_INPUT ? OP_INPUT : OP_PARAM, 0, st->name_loc);
                n->type = t;
                n->name = st->name;
                if (st->kind == ST_PARAM) n->key = st->str ? st->str : st->name;
                ir_append(g, n);
            }
            bind(L, s, st->name, st->name_loc, (Binding){B_VAL, -1, node_val(n), st->name_loc});
            lower_hints(L, s, st->attrs, n, st->kind);
            break;
        }
        case ST_LET: {
            Val v = eval(L, s, st->value, 0);
            Node *n = name_value(L, &v, st->name, st->name_loc);
            bind(L, s, st->name, st->name_loc, (Binding){B_VAL, -1, v, st->name_loc});
            if (v.kind != V_ERR) lower_hints(L, s, st->attrs, n, ST_LET);
            break;
        }
        case ST_OUTPUT: {
            Val v;
            if (st->value) {
                v = eval(L, s, st->value, 0);
                if (v.kind != V_ERR) {
                    Node *n = materialize(L, v, DT_F32, st->value->loc);
                    v = node_val(n);
                    name_value(L, &v, st->name, st->name_loc);
                }
                bind(L, s, st->name, st->name_loc, (Binding){B_VAL, -1, v, st->name_loc});
            } else {
                Binding *b = lookup(s, st->name);
                if (!b) {
                    diag_error(L->d, st->name_loc, "unknown name '%s'", st->name);
                    break;
                }
                if (b->kind == B_DIM) {
                    diag_error(L->d, st->name_loc, "'%s' is a dim, not a tensor; write 'output %s = ...' to output its value",
                               st->name, st->name);
                    break;
                }
                v = b->val;
                if (v.kind == V_NUM || v.kind == V_DIM) v = node_val(materialize(L, v, DT_F32, st->name_loc));
            }
            if (v.kind != V_NODE) break;
            if (strmap_get(&outputs, st->name)) {
                diag_error(L->d, st->name_loc, "'%s' is already an output", st->name);
                break;
            }
            strmap_put(&outputs, st->name, v.node);
            ir_add_output(g, st->name, v.node, st->name_loc);
            lower_hints(L, s, st->attrs, v.node, ST_OUTPUT);
            break;
        }
        }
    }
    if (g->noutputs == 0 && diag_error_count(L->d) == 0)
        diag_error(L->d, g->loc, "model '%s' has no outputs", g->name);
}

Graph *fe_lower(Arena *a, Diag *d, const char *file, const AstFile *ast) {
    int errors_before = diag_error_count(d);
    Lower L = {.arena = a, .d = d, .ast = ast};
    L.g = ir_graph_create(a, file);
    L.g->name = ast->model_name;
    L.g->loc = ast->model_loc;
    strmap_init(&L.fns, a);
    for (const FnDef *f = ast->fns; f; f = f->next) {
        const FnDef *old = strmap_get(&L.fns, f->name);
        if (old) {
            diag_error(d, f->loc, "redefinition of fn '%s'", f->name);
            diag_note(d, old->loc, "'%s' was first defined here", f->name);
            continue;
        }
        OpKind op;
        if (ir_op_lookup(f->name, &op))
            diag_warning(d, f->loc, "fn '%s' hides the built-in operator of the same name", f->name);
        /* parameter names must be unique */
        for (const FnParam *p = f->params; p; p = p->next)
            for (const FnParam *q = f->params; q != p; q = q->next)
                if (strcmp(p->name, q->name) == 0) diag_error(d, p->loc, "fn '%s': duplicate parameter '%s'", f->name, p->name);
        strmap_put(&L.fns, f->name, (void *)f);
    }
    Scope model = {0};
    strmap_init(&model.names, a);
    lower_model(&L, &model);
    if (diag_error_count(d) > errors_before) return NULL;
    restore_plan(&L);
    if (!ir_verify(L.g, d)) return NULL;
    return L.g;
}

Graph *fe_compile_source(Arena *a, Diag *d, const char *file, const char *src, size_t len) {
    AstFile *ast = dsg_parse(a, d, file, src, len);
    if (!ast) return NULL;
    return fe_lower(a, d, file, ast);
}

Graph *fe_compile_file(Arena *a, Diag *d, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_error(d, (Loc){path, 0, 0}, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    DSC_ASSERT(buf);
    for (;;) {
        if (len == cap) {
            if (cap >= FE_MAX_SOURCE_BYTES) {
                diag_error(d, (Loc){path, 0, 0}, "file is larger than %zu MiB", FE_MAX_SOURCE_BYTES >> 20);
                free(buf);
                fclose(f);
                return NULL;
            }
            cap *= 2;
            char *nb = realloc(buf, cap);
            DSC_ASSERT(nb);
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        diag_error(d, (Loc){path, 0, 0}, "read error");
        free(buf);
        return NULL;
    }
    char *src = arena_strndup(a, buf, len);
    free(buf);
    const char *file = arena_strdup(a, path);
    return fe_compile_source(a, d, file, src, len);
}
