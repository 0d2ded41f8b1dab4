/* Kernel IR construction, verification and printing (see kir.h). */
#include "kir.h"

#include <inttypes.h>
#include <string.h>

#include "assert.h"
#include "trap.h"

static const char *type_names[KT_COUNT] = {"bool", "i64", "f32"};

const char *kir_type_name(KType t) { return (unsigned)t < KT_COUNT ? type_names[t] : "?"; }

KType kir_compute_type(DType t) {
    if (t == DT_BOOL) return KT_BOOL;
    return dtype_is_float(t) ? KT_F32 : KT_I64;
}

static const char *op_names[KO_COUNT] = {
    [KO_NEG] = "neg",   [KO_ABS] = "abs",         [KO_EXP] = "exp",     [KO_LOG] = "log",
    [KO_SQRT] = "sqrt", [KO_RSQRT] = "rsqrt",     [KO_RECIP] = "recip", [KO_TANH] = "tanh",
    [KO_SIGMOID] = "sigmoid", [KO_RELU] = "relu", [KO_ERF] = "erf",     [KO_SILU] = "silu",
    [KO_GELU] = "gelu", [KO_GELU_TANH] = "gelu_tanh", [KO_NOT] = "not", [KO_CAST] = "cast",
    [KO_WRAP] = "wrap", [KO_ADD] = "+",           [KO_SUB] = "-",       [KO_MUL] = "*",
    [KO_DIV] = "/",     [KO_MOD] = "%",           [KO_POW] = "pow",     [KO_MAX] = "max",
    [KO_MIN] = "min",   [KO_LT] = "<",            [KO_GT] = ">",        [KO_LE] = "<=",
    [KO_GE] = ">=",     [KO_EQ] = "==",           [KO_NE] = "!=",       [KO_AND] = "&&",
    [KO_OR] = "||",
};

const char *kir_op_name(KOp op) { return (unsigned)op < KO_COUNT ? op_names[op] : "?"; }

static bool is_unary(KOp op) { return op <= KO_WRAP; }
static bool is_compare(KOp op) { return op >= KO_LT && op <= KO_NE; }

/* ---- expressions ---------------------------------------------------------- */

static KExpr *expr(Graph *g, KExprKind kind, KType type) {
    KExpr *e = arena_alloc(g->arena, sizeof *e);
    e->kind = kind;
    e->type = type;
    return e;
}

KExpr *kir_const_f(Graph *g, double v) {
    KExpr *e = expr(g, KE_CONST, KT_F32);
    e->f = v;
    return e;
}

KExpr *kir_const_i(Graph *g, int64_t v) {
    KExpr *e = expr(g, KE_CONST, KT_I64);
    e->i = v;
    return e;
}

KExpr *kir_const_b(Graph *g, bool v) {
    KExpr *e = expr(g, KE_CONST, KT_BOOL);
    e->i = v;
    return e;
}

KExpr *kir_dim(Graph *g, int sym) {
    KExpr *e = expr(g, KE_DIM, KT_I64);
    e->id = sym;
    return e;
}

KExpr *kir_var(Graph *g, int var) {
    KExpr *e = expr(g, KE_VAR, KT_I64);
    e->id = var;
    return e;
}

KExpr *kir_local(Graph *g, const Kernel *k, int local) {
    DSC_ASSERT(local >= 0 && local < k->nlocals);
    KExpr *e = expr(g, KE_LOCAL, k->locals[local]);
    e->id = local;
    return e;
}

KExpr *kir_load(Graph *g, const Kernel *k, int buf, KExpr *index) {
    DSC_ASSERT(buf >= 0 && buf < k->nbufs);
    KExpr *e = expr(g, KE_LOAD, kir_compute_type(k->bufs[buf].dtype));
    e->id = buf;
    e->a = index;
    return e;
}

KExpr *kir_un(Graph *g, KOp op, KExpr *a) {
    DSC_ASSERT(is_unary(op) && op != KO_CAST && op != KO_WRAP);
    KExpr *e = expr(g, KE_UN, op == KO_NOT ? KT_BOOL : a->type);
    e->op = op;
    e->a = a;
    return e;
}

KExpr *kir_cast(Graph *g, KType to, KExpr *a) {
    if (a->type == to) return a;
    KExpr *e = expr(g, KE_UN, to);
    e->op = KO_CAST;
    e->a = a;
    return e;
}

KExpr *kir_wrap(Graph *g, DType dt, KExpr *a) {
    DSC_ASSERT(a->type == ((dt == DT_F16 || dt == DT_BF16) ? KT_F32 : KT_I64));
    KExpr *e = expr(g, KE_UN, a->type);
    e->op = KO_WRAP;
    e->dt = dt;
    e->a = a;
    return e;
}

KExpr *kir_bin(Graph *g, KOp op, KExpr *a, KExpr *b) {
    DSC_ASSERT(!is_unary(op) && op < KO_COUNT);
    KExpr *e = expr(g, KE_BIN, is_compare(op) ? KT_BOOL : a->type);
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

KExpr *kir_select(Graph *g, KExpr *cond, KExpr *a, KExpr *b) {
    KExpr *e = expr(g, KE_SELECT, a->type);
    e->a = cond;
    e->b = a;
    e->c = b;
    return e;
}

KExpr *kir_table_load(Graph *g, const Kernel *k, int table, KExpr *index) {
    DSC_ASSERT(table >= 0 && table < k->ntables);
    KExpr *e = expr(g, KE_TABLE, KT_I64);
    e->id = table;
    e->a = index;
    return e;
}

int kir_data_buffer(Graph *g, Kernel *k, const Node *from, DType dtype, const void *data, int64_t nelems) {
    k->bufs = arena_grow(g->arena, k->bufs, sizeof(KBuf) * (size_t)k->nbufs, sizeof(KBuf) * (size_t)(k->nbufs + 1));
    k->bufs[k->nbufs] = (KBuf){from, dtype, KB_DATA, false, data, nelems};
    return k->nbufs++;
}

int kir_new_table(Graph *g, Kernel *k, const int32_t *data, int n) {
    DSC_ASSERT(n >= 1);
    int32_t *copy = arena_alloc(g->arena, sizeof(int32_t) * (size_t)n);
    memcpy(copy, data, sizeof(int32_t) * (size_t)n);
    k->tables = arena_grow(g->arena, k->tables, sizeof(KTable) * (size_t)k->ntables,
                           sizeof(KTable) * (size_t)(k->ntables + 1));
    k->tables[k->ntables] = (KTable){n, copy};
    return k->ntables++;
}

static KExpr *atom_expr(Graph *g, int atom) {
    int sym;
    DimId a, b;
    DimAtomKind kind = dim_atom(g->dims, atom, &sym, &a, &b);
    if (kind == DIM_ATOM_SYM) return kir_dim(g, sym);
    KExpr *x = kir_from_dim(g, a), *y = kir_from_dim(g, b);
    switch (kind) {
    case DIM_ATOM_DIV: return kir_bin(g, KO_DIV, x, y); /* exact: checked when the dims are bound */
    case DIM_ATOM_FLOORDIV: {
        /* floor(x / y) from C's truncating division */
        KExpr *q = kir_bin(g, KO_DIV, x, y), *r = kir_bin(g, KO_SUB, x, kir_bin(g, KO_MUL, q, y));
        KExpr *adjust = kir_bin(g, KO_AND, kir_bin(g, KO_NE, r, kir_const_i(g, 0)),
                                kir_bin(g, KO_NE, kir_bin(g, KO_LT, r, kir_const_i(g, 0)),
                                        kir_bin(g, KO_LT, y, kir_const_i(g, 0))));
        return kir_select(g, adjust, kir_bin(g, KO_SUB, q, kir_const_i(g, 1)), q);
    }
    case DIM_ATOM_MIN: return kir_bin(g, KO_MIN, x, y);
    case DIM_ATOM_MAX: return kir_bin(g, KO_MAX, x, y);
    default: DSC_UNREACHABLE();
    }
    return NULL;
}

KExpr *kir_from_dim(Graph *g, DimId d) {
    DSC_ASSERT(d != DIM_INVALID);
    KExpr *sum = NULL;
    for (int t = 0; t < dim_nterms(g->dims, d); t++) {
        int64_t coef = dim_term_coef(g->dims, d, t);
        KExpr *term = NULL;
        for (int j = 0; j < dim_term_natoms(g->dims, d, t); j++) {
            KExpr *x = atom_expr(g, dim_term_atom(g->dims, d, t, j));
            term = term ? kir_bin(g, KO_MUL, term, x) : x;
        }
        if (!term)
            term = kir_const_i(g, coef);
        else if (coef != 1)
            term = kir_bin(g, KO_MUL, kir_const_i(g, coef), term);
        sum = sum ? kir_bin(g, KO_ADD, sum, term) : term;
    }
    return sum ? sum : kir_const_i(g, 0);
}

/* ---- kernels ----------------------------------------------------------------- */

Kernel *kir_kernel_create(Graph *g, const char *name, int group) {
    Kernel *k = arena_alloc(g->arena, sizeof *k);
    k->name = arena_strdup(g->arena, name);
    k->group = group;
    k->flops = k->bytes = dim_const(g->dims, 0);
    k->osm = NULL;
    return k;
}

int kir_buffer(Graph *g, Kernel *k, const Node *node, KBufRole role, bool written) {
    for (int i = 0; i < k->nbufs; i++)
        if (k->bufs[i].node == node) {
            k->bufs[i].written |= written;
            return i;
        }
    k->bufs = arena_grow(g->arena, k->bufs, sizeof(KBuf) * (size_t)k->nbufs, sizeof(KBuf) * (size_t)(k->nbufs + 1));
    k->bufs[k->nbufs] = (KBuf){.node = node, .dtype = node->type.dtype, .role = role, .written = written};
    return k->nbufs++;
}

int kir_new_local(Graph *g, Kernel *k, KType t) {
    k->locals = arena_grow(g->arena, k->locals, sizeof(KType) * (size_t)k->nlocals,
                           sizeof(KType) * (size_t)(k->nlocals + 1));
    k->locals[k->nlocals] = t;
    return k->nlocals++;
}

int kir_new_var(Kernel *k) { return k->nvars++; }

static KStmt *stmt(Graph *g, KStmtKind kind) {
    KStmt *s = arena_alloc(g->arena, sizeof *s);
    s->kind = kind;
    return s;
}

KStmt *kir_for(Graph *g, int var, KExpr *extent, KStmt *body) {
    KStmt *s = stmt(g, KS_FOR);
    s->id = var;
    s->extent = extent;
    s->body = body;
    return s;
}

KStmt *kir_set(Graph *g, int local, KExpr *value) {
    KStmt *s = stmt(g, KS_SET);
    s->id = local;
    s->value = value;
    return s;
}

KStmt *kir_store(Graph *g, int buf, KExpr *index, KExpr *value) {
    KStmt *s = stmt(g, KS_STORE);
    s->id = buf;
    s->index = index;
    s->value = value;
    return s;
}

KStmt *kir_if(Graph *g, KExpr *cond, KStmt *body) {
    KStmt *s = stmt(g, KS_IF);
    s->value = cond;
    s->body = body;
    return s;
}

KStmt *kir_trap(Graph *g, int code, const Node *node, KExpr *a0, KExpr *a1, KExpr *a2) {
    KStmt *s = stmt(g, KS_TRAP);
    s->id = code;
    s->node = node->id;
    s->arg[0] = a0;
    s->arg[1] = a1;
    s->arg[2] = a2;
    return s;
}

bool kir_has_trap(const KStmt *s) {
    for (; s; s = s->next)
        if (s->kind == KS_TRAP || ((s->kind == KS_FOR || s->kind == KS_IF) && kir_has_trap(s->body)))
            return true;
    return false;
}

void kir_append(KStmt **head, KStmt *s) {
    while (*head) head = &(*head)->next;
    *head = s;
}

void kir_program_add(KProgram *p, Kernel *k) { VEC_PUSH(p->g->arena, p->kernels, p->nkernels, p->cap, k); }

/* ---- verification ------------------------------------------------------------ */

typedef struct {
    const Graph *g;
    const Kernel *k;
    Diag *d;
    bool *bound; /* loop variables in scope */
    bool ok;
} Check;

static void bad(Check *c, const char *what) {
    if (c->ok) diag_error(c->d, loc_file(c->g->file), "kernel IR: %s: %s", c->k->name, what);
    c->ok = false;
}

static void check_expr(Check *c, const KExpr *e) {
    if (!e) {
        bad(c, "missing expression");
        return;
    }
    switch (e->kind) {
    case KE_CONST: break;
    case KE_DIM:
        if (e->id < 0 || e->id >= dim_sym_count(c->g->dims)) bad(c, "dim symbol out of range");
        break;
    case KE_VAR:
        if (e->id < 0 || e->id >= c->k->nvars || !c->bound[e->id]) bad(c, "loop variable used outside its loop");
        break;
    case KE_LOCAL:
        if (e->id < 0 || e->id >= c->k->nlocals || c->k->locals[e->id] != e->type) bad(c, "bad local");
        break;
    case KE_LOAD:
        if (e->id < 0 || e->id >= c->k->nbufs) bad(c, "buffer out of range");
        check_expr(c, e->a);
        if (e->a && e->a->type != KT_I64) bad(c, "load index is not i64");
        break;
    case KE_TABLE:
        if (e->id < 0 || e->id >= c->k->ntables || e->type != KT_I64) bad(c, "bad table");
        check_expr(c, e->a);
        if (e->a && e->a->type != KT_I64) bad(c, "table index is not i64");
        break;
    case KE_UN:
        check_expr(c, e->a);
        if (e->op != KO_CAST && e->op != KO_NOT && e->op != KO_WRAP && e->a && e->a->type != e->type)
            bad(c, "unary operand type differs");
        break;
    case KE_BIN:
        check_expr(c, e->a);
        check_expr(c, e->b);
        if (e->a && e->b && e->a->type != e->b->type) bad(c, "binary operand types differ");
        break;
    case KE_SELECT:
        check_expr(c, e->a);
        check_expr(c, e->b);
        check_expr(c, e->c);
        if (e->a && e->a->type != KT_BOOL) bad(c, "select condition is not bool");
        if (e->b && e->c && e->b->type != e->c->type) bad(c, "select arms differ");
        break;
    }
}

static void check_block(Check *c, const KStmt *s) {
    for (; s; s = s->next) {
        switch (s->kind) {
        case KS_FOR:
            check_expr(c, s->extent);
            if (s->id < c->k->npar || s->id >= c->k->nvars || c->bound[s->id]) {
                bad(c, "bad or rebound loop variable");
                break;
            }
            c->bound[s->id] = true;
            check_block(c, s->body);
            c->bound[s->id] = false;
            break;
        case KS_SET:
            check_expr(c, s->value);
            if (s->id < 0 || s->id >= c->k->nlocals || (s->value && s->value->type != c->k->locals[s->id]))
                bad(c, "bad assignment");
            break;
        case KS_STORE:
            check_expr(c, s->index);
            check_expr(c, s->value);
            if (s->id < 0 || s->id >= c->k->nbufs || !c->k->bufs[s->id].written) bad(c, "bad store");
            else if (s->value && s->value->type != kir_compute_type(c->k->bufs[s->id].dtype))
                bad(c, "stored value type differs from the buffer's");
            if (s->index && s->index->type != KT_I64) bad(c, "store index is not i64");
            break;
        case KS_IF:
            check_expr(c, s->value);
            if (s->value && s->value->type != KT_BOOL) bad(c, "if condition is not bool");
            check_block(c, s->body);
            break;
        case KS_TRAP:
            if (s->id <= KTRAP_NONE || s->id >= KTRAP_COUNT || s->node < 0 || s->node >= c->g->nnodes)
                bad(c, "bad trap");
            for (int i = 0; i < KTRAP_NARGS; i++) {
                if (!s->arg[i]) continue;
                check_expr(c, s->arg[i]);
                if (s->arg[i]->type != KT_I64) bad(c, "trap operand is not i64");
            }
            break;
        }
    }
}

bool kir_verify(const Graph *g, const Kernel *k, Diag *d) {
    Check c = {g, k, d, arena_alloc(g->arena, sizeof(bool) * (size_t)(k->nvars + 1)), true};
    if (k->npar < 0 || k->npar > k->nvars) bad(&c, "bad parallel variable count");
    for (int i = 0; i < k->npar && c.ok; i++) {
        check_expr(&c, k->par_extent[i]);
        c.bound[i] = true;
    }
    check_block(&c, k->body);
    if (c.ok && k->osm) {
        const KOnlineSoftmax *o = k->osm;
        bool ok = o->var >= k->npar && o->var < k->nvars && o->nacc >= 0;
        int ls[2] = {o->m, o->l};
        for (int i = 0; i < 2 + o->nacc && ok; i++) {
            int l = i < 2 ? ls[i] : o->acc[i - 2];
            ok = l >= 0 && l < k->nlocals && k->locals[l] == KT_F32;
        }
        if (!ok) bad(&c, "bad online-softmax description");
    }
    return c.ok;
}

/* ---- printing ------------------------------------------------------------------ */

static void print_expr(const Graph *g, const Kernel *k, const KExpr *e, FILE *out) {
    switch (e->kind) {
    case KE_CONST:
        if (e->type == KT_F32) {
            char buf[64];
            ir_format_double(e->f, buf, sizeof buf);
            fputs(buf, out);
        } else if (e->type == KT_BOOL) {
            fputs(e->i ? "true" : "false", out);
        } else {
            fprintf(out, "%" PRId64, e->i);
        }
        break;
    case KE_DIM: fputs(dim_sym_name(g->dims, e->id), out); break;
    case KE_VAR: fprintf(out, "v%d", e->id); break;
    case KE_LOCAL: fprintf(out, "l%d", e->id); break;
    case KE_LOAD:
        fprintf(out, "b%d[", e->id);
        print_expr(g, k, e->a, out);
        fputc(']', out);
        break;
    case KE_TABLE:
        fprintf(out, "t%d[", e->id);
        print_expr(g, k, e->a, out);
        fputc(']', out);
        break;
    case KE_UN:
        if (e->op == KO_CAST)
            fprintf(out, "%s(", kir_type_name(e->type));
        else if (e->op == KO_WRAP)
            fprintf(out, "wrap_%s(", dtype_name(e->dt));
        else
            fprintf(out, "%s(", kir_op_name(e->op));
        print_expr(g, k, e->a, out);
        fputc(')', out);
        break;
    case KE_BIN:
        if (e->op == KO_POW || e->op == KO_MAX || e->op == KO_MIN) {
            fprintf(out, "%s(", kir_op_name(e->op));
            print_expr(g, k, e->a, out);
            fputs(", ", out);
            print_expr(g, k, e->b, out);
            fputc(')', out);
        } else {
            fputc('(', out);
            print_expr(g, k, e->a, out);
            fprintf(out, " %s ", kir_op_name(e->op));
            print_expr(g, k, e->b, out);
            fputc(')', out);
        }
        break;
    case KE_SELECT:
        fputc('(', out);
        print_expr(g, k, e->a, out);
        fputs(" ? ", out);
        print_expr(g, k, e->b, out);
        fputs(" : ", out);
        print_expr(g, k, e->c, out);
        fputc(')', out);
        break;
    }
}

static void print_block(const Graph *g, const Kernel *k, const KStmt *s, int depth, FILE *out) {
    for (; s; s = s->next) {
        fprintf(out, "%*s", 2 * depth, "");
        switch (s->kind) {
        case KS_FOR:
            fprintf(out, "for v%d < ", s->id);
            print_expr(g, k, s->extent, out);
            fputs(" {\n", out);
            print_block(g, k, s->body, depth + 1, out);
            fprintf(out, "%*s}\n", 2 * depth, "");
            break;
        case KS_SET:
            fprintf(out, "l%d = ", s->id);
            print_expr(g, k, s->value, out);
            fputc('\n', out);
            break;
        case KS_STORE:
            fprintf(out, "b%d[", s->id);
            print_expr(g, k, s->index, out);
            fputs("] = ", out);
            print_expr(g, k, s->value, out);
            fputc('\n', out);
            break;
        case KS_IF:
            fputs("if ", out);
            print_expr(g, k, s->value, out);
            fputs(" {\n", out);
            print_block(g, k, s->body, depth + 1, out);
            fprintf(out, "%*s}\n", 2 * depth, "");
            break;
        case KS_TRAP:
            fprintf(out, "trap %d node %d (", s->id, s->node);
            for (int i = 0; i < KTRAP_NARGS && s->arg[i]; i++) {
                if (i) fputs(", ", out);
                print_expr(g, k, s->arg[i], out);
            }
            fputs(")\n", out);
            break;
        }
    }
}

void kir_print(const Graph *g, const Kernel *k, FILE *out) {
    static const char *roles[] = {"input", "param", "constant", "planned", "data"};
    fprintf(out, "kernel %s (group %d%s)\n", k->name, k->group, k->load_time ? ", load time" : "");
    for (int i = 0; i < k->nbufs; i++) {
        const KBuf *b = &k->bufs[i];
        fprintf(out, "  b%d: %s %s %s%s\n", i, roles[b->role], b->node->name ? b->node->name : "_",
                ir_type_str(g, &b->node->type), b->written ? " (written)" : "");
    }
    for (int i = 0; i < k->nlocals; i++) fprintf(out, "  l%d: %s\n", i, kir_type_name(k->locals[i]));
    for (int i = 0; i < k->ntables; i++) {
        fprintf(out, "  t%d: i32[%d] {", i, k->tables[i].n);
        for (int j = 0; j < k->tables[i].n && j < 16; j++) fprintf(out, "%s%d", j ? ", " : "", (int)k->tables[i].data[j]);
        fputs(k->tables[i].n > 16 ? ", ...}\n" : "}\n", out);
    }
    fputs("  parallel", out);
    for (int i = 0; i < k->npar; i++) {
        fprintf(out, " v%d < ", i);
        print_expr(g, k, k->par_extent[i], out);
    }
    fputs(" {\n", out);
    print_block(g, k, k->body, 2, out);
    fputs("  }\n", out);
}
