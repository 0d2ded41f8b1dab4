/* Scanner and parser tests: every statement form, the spec's example, operator
 * precedence, lexical details, error messages with their locations, error
 * recovery, and hostile input (binary, deep nesting, huge tokens). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontend/ast.h"

static Arena *A;
static Diag *D;

static void setup(void) {
    A = arena_create();
    D = diag_create();
}

static void teardown(void) {
    diag_destroy(D);
    arena_destroy(A);
}

TestSuite(parser, .init = setup, .fini = teardown);

static AstFile *parse_n(const char *src, size_t len) { return dsg_parse(A, D, "t.dsg", src, len); }
static AstFile *parse(const char *src) { return parse_n(src, strlen(src)); }

/* Parses a model whose only statement is `let v = <expr>` and returns the expr. */
static const Expr *parse_expr(const char *expr) {
    char *src = NULL;
    cr_assert(asprintf(&src, "model m {\n let v = %s\n}\n", expr) > 0);
    AstFile *f = parse(src);
    free(src);
    cr_assert_not_null(f, "'%s' did not parse: %s", expr, diag_count(D) ? diag_message(D, 0, NULL, NULL) : "");
    cr_assert_not_null(f->stmts);
    cr_assert_eq(f->stmts->kind, ST_LET);
    return f->stmts->value;
}

static void dump_diags(void) {
    for (int i = 0; i < diag_count(D); i++) {
        Loc l;
        const char *m = diag_message(D, i, NULL, &l);
        fprintf(stderr, "  %d:%d: %s\n", l.line, l.col, m);
    }
}

/* Asserts that message i is an error at line:col with exactly text `msg`. */
static void expect_msg(int i, int line, int col, const char *msg) {
    DiagLevel lv;
    Loc l;
    const char *m = diag_message(D, i, &lv, &l);
    if (!m) dump_diags();
    cr_assert_not_null(m, "no message %d (have %d)", i, diag_count(D));
    cr_assert_eq(lv, DIAG_ERROR);
    cr_assert_str_eq(m, msg);
    cr_assert_eq(l.line, line, "'%s': line %d, expected %d", m, l.line, line);
    cr_assert_eq(l.col, col, "'%s': col %d, expected %d", m, l.col, col);
    cr_assert_str_eq(l.file, "t.dsg");
}

/* Asserts message i contains `part` (for messages with long tails); a zero
 * line or col is not checked. */
static void expect_msg_has(int i, int line, int col, const char *part) {
    Loc l;
    const char *m = diag_message(D, i, NULL, &l);
    if (!m) dump_diags();
    cr_assert_not_null(m, "no message %d (have %d)", i, diag_count(D));
    cr_assert(strstr(m, part), "message '%s' lacks '%s'", m, part);
    if (line) cr_assert_eq(l.line, line, "'%s': line %d, expected %d", m, l.line, line);
    if (col) cr_assert_eq(l.col, col, "'%s': col %d, expected %d", m, l.col, col);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void expect_name(const Expr *e, const char *name) {
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, EX_NAME, "kind %d, expected a name", e->kind);
    cr_assert_str_eq(e->name, name);
}

static void expect_int(const Expr *e, int64_t v) {
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, EX_NUM);
    cr_assert(e->num.is_int);
    cr_assert_eq(e->num.ival, v);
}

/* ---- the spec's example ------------------------------------------------- */

static const char *spec_example =
    "# A pre-norm transformer feed-forward block.\n"
    "fn ffn(x, w1, b1, w2, b2) {\n"
    "  let h = gelu(linear(x, w1, b1))\n"
    "  return linear(h, w2, b2)\n"
    "}\n"
    "\n"
    "model ffn_block {\n"
    "  weights \"ffn_block.safetensors\"      # path relative to this file\n"
    "  dim B, S <= 512                      # symbolic dims; S has an upper bound\n"
    "\n"
    "  input  x    : f32[B, S, 768]\n"
    "  param  ln.g : f32[768]\n"
    "  param  ln.b : f32[768]\n"
    "  param  fc1.weight : f32[3072, 768]   # torch layout: [out, in]\n"
    "  param  fc1.bias   : f32[3072]\n"
    "  param  fc2.weight : f32[768, 3072] @sparse(block=[4, 4], density=0.7)\n"
    "  param  fc2.bias   : f32[768]\n"
    "\n"
    "  let n = layernorm(x, ln.g, ln.b, eps=1e-5)\n"
    "  output y = x + ffn(n, fc1.weight, fc1.bias, fc2.weight, fc2.bias)\n"
    "}\n";

Test(parser, spec_example) {
    AstFile *f = parse(spec_example);
    if (!f) dump_diags();
    cr_assert_not_null(f);
    cr_assert_eq(diag_count(D), 0);

    /* fn ffn(x, w1, b1, w2, b2) */
    const FnDef *fn = f->fns;
    cr_assert_not_null(fn);
    cr_assert_null(fn->next);
    cr_assert_str_eq(fn->name, "ffn");
    cr_assert_eq(fn->loc.line, 2);
    cr_assert_eq(fn->loc.col, 4);
    cr_assert_eq(fn->nparams, 5);
    const char *pn[] = {"x", "w1", "b1", "w2", "b2"};
    int i = 0;
    for (const FnParam *p = fn->params; p; p = p->next, i++) cr_assert_str_eq(p->name, pn[i]);
    cr_assert_eq(i, 5);
    cr_assert_eq(fn->params->next->loc.col, 11);
    /* let h = gelu(linear(x, w1, b1)) */
    const Stmt *h = fn->body;
    cr_assert_not_null(h);
    cr_assert_null(h->next);
    cr_assert_eq(h->kind, ST_LET);
    cr_assert_str_eq(h->name, "h");
    cr_assert_eq(h->loc.line, 3);
    cr_assert_eq(h->loc.col, 3);
    cr_assert_eq(h->name_loc.col, 7);
    cr_assert_eq(h->value->kind, EX_CALL);
    cr_assert_str_eq(h->value->call.callee, "gelu");
    cr_assert_eq(h->value->loc.col, 11);
    const Expr *lin = h->value->call.args->value;
    cr_assert_eq(lin->kind, EX_CALL);
    cr_assert_str_eq(lin->call.callee, "linear");
    cr_assert_eq(lin->loc.col, 16);
    cr_assert_null(h->value->call.args->next);
    const Arg *a = lin->call.args;
    expect_name(a->value, "x");
    cr_assert_null(a->name);
    cr_assert_eq(a->loc.col, 23);
    expect_name(a->next->value, "w1");
    expect_name(a->next->next->value, "b1");
    cr_assert_null(a->next->next->next);
    /* return linear(h, w2, b2) */
    cr_assert_eq(fn->ret->kind, EX_CALL);
    cr_assert_str_eq(fn->ret->call.callee, "linear");
    cr_assert_eq(fn->ret_loc.line, 4);
    cr_assert_eq(fn->ret_loc.col, 3);

    cr_assert_str_eq(f->model_name, "ffn_block");
    cr_assert_eq(f->model_loc.line, 7);
    cr_assert_eq(f->model_loc.col, 7);

    const Stmt *s = f->stmts;
    cr_assert_eq(s->kind, ST_WEIGHTS);
    cr_assert_str_eq(s->str, "ffn_block.safetensors");
    cr_assert_eq(s->loc.line, 8);
    cr_assert_eq(s->loc.col, 3);
    cr_assert_eq(s->str_loc.col, 11);

    s = s->next;
    cr_assert_eq(s->kind, ST_DIM);
    cr_assert_str_eq(s->name, "B");
    cr_assert_null(s->bound);
    cr_assert_eq(s->loc.col, 3);
    cr_assert_eq(s->name_loc.col, 7);
    s = s->next;
    cr_assert_eq(s->kind, ST_DIM);
    cr_assert_str_eq(s->name, "S");
    cr_assert_eq(s->loc.line, 9);
    cr_assert_eq(s->loc.col, 3);
    cr_assert_eq(s->name_loc.col, 10);
    expect_int(s->bound, 512);
    cr_assert_eq(s->bound->loc.col, 15);

    s = s->next;
    cr_assert_eq(s->kind, ST_INPUT);
    cr_assert_str_eq(s->name, "x");
    cr_assert(s->type.valid);
    cr_assert_eq(s->type.dtype, DT_F32);
    cr_assert_not(s->type.scalar);
    cr_assert_eq(s->type.rank, 3);
    cr_assert_eq(s->type.loc.line, 11);
    cr_assert_eq(s->type.loc.col, 17);
    expect_name(s->type.dims, "B");
    expect_name(s->type.dims->next, "S");
    expect_int(s->type.dims->next->next, 768);
    cr_assert_null(s->type.dims->next->next->next);

    const char *params[] = {"ln.g", "ln.b", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    const int ranks[] = {1, 1, 2, 1, 2, 1};
    for (int k = 0; k < 6; k++) {
        s = s->next;
        cr_assert_eq(s->kind, ST_PARAM);
        cr_assert_str_eq(s->name, params[k]);
        cr_assert_eq(s->type.rank, ranks[k]);
        cr_assert_null(s->str);
        if (k != 4) cr_assert_null(s->attrs);
        if (k == 4) {
            const AstAttr *at = s->attrs;
            cr_assert_not_null(at);
            cr_assert_null(at->next);
            cr_assert_str_eq(at->name, "sparse");
            cr_assert_eq(at->loc.line, 16);
            cr_assert_eq(at->loc.col, 38);
            const Arg *b = at->args;
            cr_assert_str_eq(b->name, "block");
            cr_assert_eq(b->loc.col, 46);
            cr_assert_eq(b->value->kind, EX_LIST);
            cr_assert_eq(b->value->list.n, 2);
            expect_int(b->value->list.items, 4);
            expect_int(b->value->list.items->next, 4);
            const Arg *dn = b->next;
            cr_assert_str_eq(dn->name, "density");
            cr_assert_eq(dn->value->kind, EX_NUM);
            cr_assert_not(dn->value->num.is_int);
            cr_assert_float_eq(dn->value->num.value, 0.7, 1e-12);
            cr_assert_null(dn->next);
        }
    }

    s = s->next;
    cr_assert_eq(s->kind, ST_LET);
    cr_assert_str_eq(s->name, "n");
    const Expr *ln = s->value;
    cr_assert_eq(ln->kind, EX_CALL);
    cr_assert_str_eq(ln->call.callee, "layernorm");
    a = ln->call.args;
    expect_name(a->value, "x");
    expect_name(a->next->value, "ln.g");
    expect_name(a->next->next->value, "ln.b");
    a = a->next->next->next;
    cr_assert_str_eq(a->name, "eps");
    cr_assert_eq(a->loc.line, 19);
    cr_assert_eq(a->loc.col, 36);
    cr_assert_float_eq(a->value->num.value, 1e-5, 1e-20);
    cr_assert_str_eq(a->value->num.text, "1e-5");

    s = s->next;
    cr_assert_eq(s->kind, ST_OUTPUT);
    cr_assert_str_eq(s->name, "y");
    cr_assert_eq(s->loc.line, 20);
    cr_assert_eq(s->loc.col, 3);
    cr_assert_eq(s->name_loc.col, 10);
    const Expr *y = s->value;
    cr_assert_eq(y->kind, EX_BIN);
    cr_assert_eq(y->bin.op, '+');
    cr_assert_eq(y->loc.col, 16); /* the operator */
    expect_name(y->bin.lhs, "x");
    cr_assert_eq(y->bin.rhs->kind, EX_CALL);
    cr_assert_str_eq(y->bin.rhs->call.callee, "ffn");
    cr_assert_eq(y->bin.rhs->loc.col, 18);
    cr_assert_null(s->next);
}

/* ---- statement forms ---------------------------------------------------- */

Test(parser, statement_forms) {
    const char *src = "model m {\n"
                      "  weights \"w.safetensors\"\n"
                      "  dim N\n"
                      "  dim A <= 8, B, C <= 16\n"
                      "  input s : f32\n"
                      "  input e : i64[]\n"
                      "  input t : bf16[N*2, 3]\n"
                      "  param p : f16[4] from \"layers.0.p\" @sparse(block=[2, 2], density=0.5) @hot\n"
                      "  param q : bool[1]\n"
                      "  let a = s @precision(dtype=f16)\n"
                      "  let b = a @precision(f16)\n"
                      "  let c = cast(b, i8)\n"
                      "  output a\n"
                      "  output z = c @precision(bf16) @other()\n"
                      "}\n";
    AstFile *f = parse(src);
    if (!f) dump_diags();
    cr_assert_not_null(f);
    cr_assert_null(f->fns);
    const Stmt *s = f->stmts;
    cr_assert_eq(s->kind, ST_WEIGHTS);
    cr_assert_str_eq(s->str, "w.safetensors");

    s = s->next;
    cr_assert_eq(s->kind, ST_DIM);
    cr_assert_str_eq(s->name, "N");
    cr_assert_null(s->bound);
    const char *dn[] = {"A", "B", "C"};
    const int64_t bounds[] = {8, -1, 16};
    for (int k = 0; k < 3; k++) {
        s = s->next;
        cr_assert_eq(s->kind, ST_DIM);
        cr_assert_str_eq(s->name, dn[k]);
        cr_assert_eq(s->loc.line, 4);
        cr_assert_eq(s->loc.col, 3);
        if (bounds[k] < 0)
            cr_assert_null(s->bound);
        else
            expect_int(s->bound, bounds[k]);
    }
    cr_assert_eq(s->name_loc.col, 18);

    s = s->next; /* input s : f32 */
    cr_assert_eq(s->kind, ST_INPUT);
    cr_assert(s->type.valid);
    cr_assert(s->type.scalar);
    cr_assert_eq(s->type.rank, 0);
    cr_assert_null(s->type.dims);
    s = s->next; /* input e : i64[] */
    cr_assert_eq(s->type.dtype, DT_I64);
    cr_assert_not(s->type.scalar);
    cr_assert_eq(s->type.rank, 0);
    cr_assert_null(s->type.dims);
    s = s->next; /* input t : bf16[N*2, 3] */
    cr_assert_eq(s->type.dtype, DT_BF16);
    cr_assert_eq(s->type.rank, 2);
    cr_assert_eq(s->type.dims->kind, EX_BIN);
    cr_assert_eq(s->type.dims->bin.op, '*');
    expect_int(s->type.dims->next, 3);

    s = s->next; /* param p */
    cr_assert_eq(s->kind, ST_PARAM);
    cr_assert_eq(s->type.dtype, DT_F16);
    cr_assert_str_eq(s->str, "layers.0.p");
    cr_assert_eq(s->str_loc.line, 8);
    cr_assert_eq(s->str_loc.col, 25);
    cr_assert_str_eq(s->attrs->name, "sparse");
    cr_assert_str_eq(s->attrs->next->name, "hot");
    cr_assert_null(s->attrs->next->args);
    cr_assert_null(s->attrs->next->next);
    s = s->next; /* param q */
    cr_assert_eq(s->type.dtype, DT_BOOL);
    cr_assert_null(s->str);
    cr_assert_null(s->attrs);

    s = s->next; /* let a = s @precision(dtype=f16) */
    cr_assert_eq(s->kind, ST_LET);
    expect_name(s->value, "s");
    cr_assert_str_eq(s->attrs->name, "precision");
    cr_assert_str_eq(s->attrs->args->name, "dtype");
    cr_assert_eq(s->attrs->args->value->kind, EX_DTYPE);
    cr_assert_eq(s->attrs->args->value->dtype, DT_F16);
    s = s->next; /* let b = a @precision(f16) */
    cr_assert_null(s->attrs->args->name);
    cr_assert_eq(s->attrs->args->value->kind, EX_DTYPE);
    cr_assert_eq(s->attrs->args->value->dtype, DT_F16);
    s = s->next; /* let c = cast(b, i8) */
    const Arg *ca = s->value->call.args->next;
    cr_assert_null(ca->name);
    cr_assert_eq(ca->value->kind, EX_DTYPE);
    cr_assert_eq(ca->value->dtype, DT_I8);
    cr_assert_eq(ca->loc.col, 19);

    s = s->next; /* output a */
    cr_assert_eq(s->kind, ST_OUTPUT);
    cr_assert_str_eq(s->name, "a");
    cr_assert_null(s->value);
    cr_assert_null(s->attrs);
    s = s->next; /* output z = c ... */
    cr_assert_eq(s->kind, ST_OUTPUT);
    expect_name(s->value, "c");
    cr_assert_str_eq(s->attrs->name, "precision");
    cr_assert_eq(s->attrs->args->value->dtype, DT_BF16);
    cr_assert_str_eq(s->attrs->next->name, "other");
    cr_assert_null(s->attrs->next->args);
    cr_assert_null(s->next);
}

Test(parser, empty_model_and_fn_without_lets) {
    AstFile *f = parse("fn id(x) { return x }\nfn k() { return 1 }\nmodel m {}");
    cr_assert_not_null(f);
    cr_assert_str_eq(f->fns->name, "id");
    cr_assert_null(f->fns->body);
    expect_name(f->fns->ret, "x");
    cr_assert_str_eq(f->fns->next->name, "k");
    cr_assert_eq(f->fns->next->nparams, 0);
    cr_assert_null(f->fns->next->params);
    cr_assert_null(f->stmts);
    cr_assert_str_eq(f->model_name, "m");
}

Test(parser, fn_with_lets_in_order) {
    AstFile *f = parse("fn g(a, b) {\n let c = a\n let d = c * b\n return d + 1\n}\nmodel m { }\n");
    cr_assert_not_null(f);
    const Stmt *s = f->fns->body;
    cr_assert_str_eq(s->name, "c");
    cr_assert_str_eq(s->next->name, "d");
    cr_assert_null(s->next->next);
    cr_assert_eq(f->fns->ret->kind, EX_BIN);
}

/* ---- call arguments and values ----------------------------------------- */

Test(parser, named_argument_values) {
    const Expr *e = parse_expr("f(x, a=1, b=-2.5, c=\"tanh\", d=true, e=false, g=f16, h=[], "
                               "i=[1, [2, 3], []], mask=m, k=S*2-1, l=[B, -1])");
    cr_assert_eq(e->kind, EX_CALL);
    const Arg *a = e->call.args;
    cr_assert_null(a->name);
    expect_name(a->value, "x");
    a = a->next;
    cr_assert_str_eq(a->name, "a");
    expect_int(a->value, 1);
    a = a->next;
    cr_assert_eq(a->value->kind, EX_NEG);
    cr_assert_float_eq(a->value->operand->num.value, 2.5, 0);
    a = a->next;
    cr_assert_eq(a->value->kind, EX_STRING);
    cr_assert_str_eq(a->value->str, "tanh");
    a = a->next;
    cr_assert_eq(a->value->kind, EX_BOOL);
    cr_assert(a->value->boolean);
    a = a->next;
    cr_assert_eq(a->value->kind, EX_BOOL);
    cr_assert_not(a->value->boolean);
    a = a->next;
    cr_assert_eq(a->value->kind, EX_DTYPE);
    cr_assert_eq(a->value->dtype, DT_F16);
    a = a->next;
    cr_assert_eq(a->value->kind, EX_LIST);
    cr_assert_eq(a->value->list.n, 0);
    cr_assert_null(a->value->list.items);
    a = a->next;
    const Expr *l = a->value;
    cr_assert_eq(l->list.n, 3);
    expect_int(l->list.items, 1);
    cr_assert_eq(l->list.items->next->kind, EX_LIST);
    cr_assert_eq(l->list.items->next->list.n, 2);
    cr_assert_eq(l->list.items->next->next->kind, EX_LIST);
    cr_assert_null(l->list.items->next->next->next);
    a = a->next;
    cr_assert_str_eq(a->name, "mask");
    expect_name(a->value, "m");
    a = a->next;
    cr_assert_eq(a->value->kind, EX_BIN);
    cr_assert_eq(a->value->bin.op, '-');
    a = a->next;
    cr_assert_eq(a->value->list.items->next->kind, EX_NEG);
    cr_assert_null(a->next);
}

Test(parser, call_without_args_and_nested_calls) {
    const Expr *e = parse_expr("f()");
    cr_assert_eq(e->kind, EX_CALL);
    cr_assert_null(e->call.args);
    e = parse_expr("a(b(c(d)))");
    cr_assert_eq(e->depth, 4);
    cr_assert_str_eq(e->call.args->value->call.args->value->call.callee, "c");
}

/* ---- precedence --------------------------------------------------------- */

Test(parser, precedence) {
    /* -a*b+c/d  ==  ((-a)*b) + (c/d) */
    const Expr *e = parse_expr("-a*b+c/d");
    cr_assert_eq(e->kind, EX_BIN);
    cr_assert_eq(e->bin.op, '+');
    cr_assert_eq(e->loc.col, 14);
    const Expr *m = e->bin.lhs;
    cr_assert_eq(m->kind, EX_BIN);
    cr_assert_eq(m->bin.op, '*');
    cr_assert_eq(m->bin.lhs->kind, EX_NEG);
    cr_assert_eq(m->bin.lhs->loc.col, 10);
    expect_name(m->bin.lhs->operand, "a");
    expect_name(m->bin.rhs, "b");
    const Expr *dv = e->bin.rhs;
    cr_assert_eq(dv->bin.op, '/');
    expect_name(dv->bin.lhs, "c");
    expect_name(dv->bin.rhs, "d");
    cr_assert_eq(e->depth, 4);
}

Test(parser, left_associative) {
    const Expr *e = parse_expr("a - b - c");
    cr_assert_eq(e->bin.op, '-');
    cr_assert_eq(e->bin.lhs->kind, EX_BIN);
    expect_name(e->bin.lhs->bin.lhs, "a");
    expect_name(e->bin.lhs->bin.rhs, "b");
    expect_name(e->bin.rhs, "c");
    e = parse_expr("a / b * c");
    cr_assert_eq(e->bin.op, '*');
    cr_assert_eq(e->bin.lhs->bin.op, '/');
}

Test(parser, parentheses_and_unary) {
    const Expr *e = parse_expr("2 * (3 + x)");
    cr_assert_eq(e->bin.op, '*');
    cr_assert_eq(e->bin.rhs->bin.op, '+');
    e = parse_expr("-(a + b)");
    cr_assert_eq(e->kind, EX_NEG);
    cr_assert_eq(e->operand->bin.op, '+');
    e = parse_expr("--a - -b");
    cr_assert_eq(e->kind, EX_BIN);
    cr_assert_eq(e->bin.op, '-');
    cr_assert_eq(e->bin.lhs->kind, EX_NEG);
    cr_assert_eq(e->bin.lhs->operand->kind, EX_NEG);
    cr_assert_eq(e->bin.rhs->kind, EX_NEG);
    e = parse_expr("((x))");
    expect_name(e, "x");
    cr_assert_eq(e->depth, 1);
}

/* ---- lexical ------------------------------------------------------------ */

Test(parser, dotted_names) {
    AstFile *f = parse("model m {\n"
                       "  param model.embed.weight : f32[4]\n"
                       "  param encoder.layer.0.output.dense.weight : f32[4]\n"
                       "  param let.x : f32[2]\n"
                       "  let _a.b_2.3c = model.embed.weight + encoder.layer.0.output.dense.weight\n"
                       "  output out.put.0 = _a.b_2.3c\n"
                       "}\n");
    if (!f) dump_diags();
    cr_assert_not_null(f);
    const Stmt *s = f->stmts;
    cr_assert_str_eq(s->name, "model.embed.weight");
    cr_assert_str_eq(s->next->name, "encoder.layer.0.output.dense.weight");
    cr_assert_str_eq(s->next->next->name, "let.x");
    s = s->next->next->next;
    cr_assert_str_eq(s->name, "_a.b_2.3c");
    expect_name(s->value->bin.lhs, "model.embed.weight");
    expect_name(s->value->bin.rhs, "encoder.layer.0.output.dense.weight");
    cr_assert_str_eq(s->next->name, "out.put.0");
}

Test(parser, name_then_dot_is_an_error) {
    /* "a." is the name `a` followed by an invalid '.'. */
    cr_assert_null(parse("model m {\n let x = a.\n}"));
    expect_msg(0, 2, 11, "unexpected character '.'");
}

Test(parser, numbers) {
    const Expr *e = parse_expr("768");
    expect_int(e, 768);
    cr_assert_str_eq(e->num.text, "768");
    cr_assert_float_eq(e->num.value, 768.0, 0);
    cr_assert_not(e->num.overflow);

    e = parse_expr("0.5");
    cr_assert_not(e->num.is_int);
    cr_assert_float_eq(e->num.value, 0.5, 0);
    e = parse_expr("1e-5");
    cr_assert_not(e->num.is_int);
    cr_assert_float_eq(e->num.value, 1e-5, 1e-20);
    e = parse_expr("3.0E+2");
    cr_assert_not(e->num.is_int);
    cr_assert_float_eq(e->num.value, 300.0, 0);
    cr_assert_str_eq(e->num.text, "3.0E+2");
    e = parse_expr(".5");
    cr_assert_not(e->num.is_int);
    cr_assert_float_eq(e->num.value, 0.5, 0);
    e = parse_expr("5.");
    cr_assert_not(e->num.is_int);
    cr_assert_float_eq(e->num.value, 5.0, 0);
    e = parse_expr("2E3");
    cr_assert_not(e->num.is_int);
    cr_assert_float_eq(e->num.value, 2000.0, 0);
    e = parse_expr("0");
    expect_int(e, 0);
    e = parse_expr("007");
    expect_int(e, 7);

    e = parse_expr("9223372036854775807");
    expect_int(e, INT64_MAX);
    cr_assert_not(e->num.overflow);
    e = parse_expr("9223372036854775808");
    cr_assert(e->num.is_int);
    cr_assert(e->num.overflow);
    e = parse_expr("123456789012345678901234567890");
    cr_assert(e->num.overflow);
    cr_assert_float_eq(e->num.value, 1.2345678901234568e29, 1e15);

    /* a leading '-' is the unary operator */
    e = parse_expr("-1");
    cr_assert_eq(e->kind, EX_NEG);
    expect_int(e->operand, 1);
}

Test(parser, invalid_number) {
    cr_assert_null(parse("model m {\n let x = 12ab + 1\n let y = 3\n}"));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 2, 10, "invalid number '12ab'");
}

Test(parser, string_escapes) {
    AstFile *f = parse("model m {\n weights \"a\\\"b\\\\c\\nd\"\n}");
    cr_assert_not_null(f);
    cr_assert_str_eq(f->stmts->str, "a\"b\\c\nd");
    f = parse("model m { weights \"\" }");
    cr_assert_not_null(f);
    cr_assert_str_eq(f->stmts->str, "");
}

Test(parser, unknown_escape) {
    cr_assert_null(parse("model m {\n  weights \"ab\\tc\"\n}"));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 2, 14, "unknown escape sequence '\\t' in string (use \\\", \\\\ or \\n)");
}

Test(parser, unterminated_string) {
    cr_assert_null(parse("model m {\n  weights \"abc\n  dim B\n}"));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 2, 11, "unterminated string");
}

Test(parser, unterminated_string_at_eof_and_backslash) {
    cr_assert_null(parse("model m {\n  weights \"abc\\"));
    expect_msg(0, 2, 11, "unterminated string");
    diag_clear(D);
    cr_assert_null(parse("model m {\n\tweights \"abc\\\n}\n"));
    expect_msg(0, 2, 10, "unterminated string");
    cr_assert_eq(diag_error_count(D), 1);
}

Test(parser, nul_byte_in_string) {
    static const char src[] = "model m { weights \"a\0b\" }";
    cr_assert_null(parse_n(src, sizeof src - 1));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 1, 21, "NUL byte in string");
}

Test(parser, comments_and_whitespace) {
    AstFile *f = parse("# header\r\n\t# more\nmodel\tm\r\n{ # c\n\f\vdim B # d\n} # end");
    if (!f) dump_diags();
    cr_assert_not_null(f);
    cr_assert_str_eq(f->stmts->name, "B");
    cr_assert_eq(f->stmts->loc.line, 5);
    cr_assert_eq(f->stmts->loc.col, 3);
}

Test(parser, tabs_count_as_one_column) {
    cr_assert_null(parse("model m {\n\t\tlet x = $\n}"));
    expect_msg(0, 2, 11, "unexpected character '$'");
}

/* ---- keywords ----------------------------------------------------------- */

Test(parser, keywords_rejected_as_names) {
    const char *src = "model m {\n"
                      "  let input = x\n"
                      "  input model : f32[2]\n"
                      "  dim f32, from\n"
                      "  param true : f32\n"
                      "  output return\n"
                      "}\n";
    cr_assert_null(parse(src));
    expect_msg(0, 2, 7, "'input' is a keyword and cannot be used as a name");
    expect_msg(1, 3, 9, "'model' is a keyword and cannot be used as a name");
    expect_msg(2, 4, 7, "'f32' is a keyword and cannot be used as a name");
    expect_msg(3, 4, 12, "'from' is a keyword and cannot be used as a name");
    expect_msg(4, 5, 9, "'true' is a keyword and cannot be used as a name");
    expect_msg(5, 6, 10, "'return' is a keyword and cannot be used as a name");
    cr_assert_eq(diag_error_count(D), 6);
}

Test(parser, keywords_rejected_in_fn_and_model_names) {
    cr_assert_null(parse("fn let(x, dim) {\n let fn = x\n return fn\n}\nmodel weights {}"));
    expect_msg(0, 1, 4, "'let' is a keyword and cannot be used as a name");
    expect_msg(1, 1, 11, "'dim' is a keyword and cannot be used as a name");
    expect_msg(2, 2, 6, "'fn' is a keyword and cannot be used as a name");
    /* `return fn` uses a keyword where an expression is needed */
    expect_msg_has(3, 3, 9, "syntax error: unexpected 'fn'");
    expect_msg(4, 5, 7, "'weights' is a keyword and cannot be used as a name");
    cr_assert_eq(diag_error_count(D), 5);
}

Test(parser, keyword_prefixes_are_names) {
    AstFile *f = parse("model m {\n let models = x\n let f32x = lets\n let i64_ = dims\n}");
    cr_assert_not_null(f);
    cr_assert_str_eq(f->stmts->name, "models");
    cr_assert_str_eq(f->stmts->next->name, "f32x");
    cr_assert_str_eq(f->stmts->next->next->name, "i64_");
}

/* ---- errors ------------------------------------------------------------- */

Test(parser, syntax_error_message) {
    cr_assert_null(parse("model m {\n  let x = )\n}"));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 2, 11, "syntax error: unexpected ')', expecting name, number, '(' or '-'");
}

Test(parser, syntax_error_names_the_token) {
    cr_assert_null(parse("model m {\n  input x f32[2]\n}"));
    expect_msg(0, 2, 11, "syntax error: unexpected 'f32', expecting ':'");
    diag_clear(D);
    cr_assert_null(parse("model m {\n  input x : f32[2] y\n}"));
    expect_msg_has(0, 2, 20, "syntax error: unexpected name 'y'");
    diag_clear(D);
    cr_assert_null(parse("model m {\n  weights 12\n}"));
    expect_msg(0, 2, 11, "syntax error: unexpected number '12', expecting string");
    diag_clear(D);
    cr_assert_null(parse("model m {\n  let x = f(a\n"));
    expect_msg(0, 3, 1, "syntax error: unexpected end of file");
}

Test(parser, several_syntax_errors_reported) {
    const char *src = "model m {\n"
                      "  input x : f32[2]\n"
                      "  let a = x +\n"
                      "  let b = (x\n"
                      "  let c = x\n"
                      "  output = c\n"
                      "  output c\n"
                      "}\n";
    cr_assert_null(parse(src));
    cr_assert_eq(diag_error_count(D), 3);
    expect_msg(0, 4, 3, "syntax error: unexpected 'let', expecting name, number, '(' or '-'");
    expect_msg_has(1, 5, 3, "syntax error: unexpected 'let'");
    expect_msg_has(2, 6, 10, "syntax error: unexpected '='");
}

Test(parser, consecutive_short_errors_all_reported) {
    /* Errors right after a recovery are not swallowed. */
    const char *src = "model m {\n"
                      "  output )\n"
                      "  output )\n"
                      "  dim ,\n"
                      "  let = 1\n"
                      "}\n";
    cr_assert_null(parse(src));
    cr_assert_eq(diag_error_count(D), 4);
    expect_msg_has(0, 2, 10, "unexpected ')'");
    expect_msg_has(1, 3, 10, "unexpected ')'");
    expect_msg_has(2, 4, 7, "unexpected ','");
    expect_msg_has(3, 5, 7, "unexpected '='");
}

Test(parser, errors_in_fns_and_model) {
    const char *src = "fn f(x) {\n"
                      "  let a = x x\n"
                      "  let b = *\n"
                      "  return a\n"
                      "}\n"
                      "fn g(a b) { return a }\n"
                      "fn h(a) { let y = a }\n"
                      "model m {\n"
                      "  let q = f(1\n"
                      "  output q\n"
                      "}\n";
    cr_assert_null(parse(src));
    expect_msg_has(0, 2, 13, "syntax error: unexpected name 'x'");
    expect_msg_has(1, 3, 11, "syntax error: unexpected '*'");
    expect_msg_has(2, 6, 8, "syntax error: unexpected name 'b', expecting ')' or ','");
    expect_msg(3, 7, 21, "fn 'h' has no 'return'");
    expect_msg_has(4, 10, 3, "syntax error: unexpected 'output'");
    cr_assert_eq(diag_error_count(D), 5);
}

Test(parser, error_in_return_does_not_claim_missing_return) {
    cr_assert_null(parse("fn f(x) { return x + }\nmodel m { }"));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 1, 22, "syntax error: unexpected '}', expecting name, number, '(' or '-'");
}

Test(parser, bad_model_header_recovers) {
    cr_assert_null(parse("model {\n  let = 1\n}"));
    cr_assert_eq(diag_error_count(D), 2);
    expect_msg(0, 1, 7, "syntax error: unexpected '{', expecting name");
    expect_msg_has(1, 2, 7, "unexpected '='");
}

Test(parser, unknown_dtype) {
    cr_assert_null(parse("model m {\n  input x : f64[3]\n  param w : float[2, 2]\n  input ok : f16[1]\n}"));
    cr_assert_eq(diag_error_count(D), 2);
    expect_msg(0, 2, 13, "unknown dtype 'f64'");
    expect_msg(1, 3, 13, "unknown dtype 'float'");
}

Test(parser, dim_bound_is_any_number) {
    /* the frontend checks that it is a non-negative integer */
    AstFile *f = parse("model m {\n  dim S <= 1.5\n}");
    cr_assert_not_null(f);
    cr_assert_not(f->stmts->bound->num.is_int);
    cr_assert_eq(f->stmts->bound->loc.col, 12);
    cr_assert_null(parse("model m {\n  dim S <= -1\n}"));
    expect_msg(0, 2, 12, "syntax error: unexpected '-', expecting number");
}

Test(parser, missing_model) {
    cr_assert_null(parse(""));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 1, 1, "expected a 'model' definition");
    diag_clear(D);

    cr_assert_null(parse("# only a comment\n"));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 2, 1, "expected a 'model' definition");
    diag_clear(D);

    cr_assert_null(parse("fn f(x) { return x }\n  "));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 2, 3, "expected a 'model' definition");
    diag_clear(D);

    cr_assert_null(parse_n(NULL, 0));
    expect_msg(0, 1, 1, "expected a 'model' definition");
}

Test(parser, misspelled_model_is_one_error) {
    cr_assert_null(parse("modle m {\n let x = 1\n}\n"));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 1, 1, "syntax error: unexpected name 'modle', expecting end of file, 'model' or 'fn'");
}

Test(parser, text_after_model) {
    cr_assert_null(parse("model m {\n}\nlet x = 1\n"));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg(0, 3, 1, "syntax error: unexpected 'let', expecting end of file");
    diag_clear(D);
    cr_assert_null(parse("model m {}\nmodel n {}\n"));
    expect_msg(0, 2, 1, "syntax error: unexpected 'model', expecting end of file");
    diag_clear(D);
    cr_assert_null(parse("model m {} }"));
    expect_msg(0, 1, 12, "syntax error: unexpected '}', expecting end of file");
}

Test(parser, fn_after_model) {
    cr_assert_null(parse("model m {}\nfn f(x) { return x }\n"));
    expect_msg(0, 2, 1, "syntax error: unexpected 'fn', expecting end of file");
}

Test(parser, missing_close_brace) {
    cr_assert_null(parse("model m {\n  let x = 1\n"));
    expect_msg_has(0, 3, 1, "syntax error: unexpected end of file");
}

/* ---- hostile input ------------------------------------------------------ */

Test(parser, invalid_characters) {
    static const char src[] = "model m {\n let x = a \x01 + \xff b ` \n}";
    cr_assert_null(parse_n(src, sizeof src - 1));
    expect_msg(0, 2, 12, "unexpected character '\\x01'");
    expect_msg(1, 2, 16, "unexpected character '\\xff'");
    expect_msg(2, 2, 20, "unexpected character '`'");
    cr_assert_eq(diag_error_count(D), 3);
}

Test(parser, nul_bytes) {
    static const char src[] = "model m {\0\n let x = 1\0\0\n}\0";
    cr_assert_null(parse_n(src, sizeof src - 1));
    cr_assert_eq(diag_error_count(D), 4);
    expect_msg(0, 1, 10, "unexpected character '\\x00'");
    expect_msg(1, 2, 11, "unexpected character '\\x00'");
    expect_msg(3, 3, 2, "unexpected character '\\x00'");
}

Test(parser, binary_garbage) {
    size_t n = 1 << 16;
    unsigned char *buf = malloc(n);
    unsigned s = 12345;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < n; i++) {
            s = s * 1103515245u + 12345u;
            buf[i] = (unsigned char)(s >> 16);
        }
        cr_assert_null(parse_n((const char *)buf, n));
        cr_assert_gt(diag_error_count(D), 0);
        cr_assert_leq(diag_error_count(D), DIAG_MAX_ERRORS);
        diag_clear(D);
    }
    /* garbage made of DSG tokens */
    static const char *toks[] = {"model", "fn", "let", "(", ")", "{", "}", "[", "]", ",", "=",
                                 "x", "1", "2.5", "\"s\"", "@", "+", "-", ":", "f32", "<=", "\n"};
    char *src = malloc(1 << 20);
    for (int round = 0; round < 50; round++) {
        size_t len = 0;
        for (int i = 0; i < 3000; i++) {
            s = s * 1103515245u + 12345u;
            const char *t = toks[(s >> 16) % (sizeof toks / sizeof toks[0])];
            len += (size_t)sprintf(src + len, "%s ", t);
        }
        parse_n(src, len);
        diag_clear(D);
    }
    free(src);
    free(buf);
}

Test(parser, stops_when_diag_is_full) {
    size_t n = 100000;
    char *src = malloc(n);
    memset(src, '$', n);
    cr_assert_null(parse_n(src, n));
    cr_assert(diag_full(D));
    cr_assert_eq(diag_error_count(D), DIAG_MAX_ERRORS);
    free(src);
}

Test(parser, deeply_nested_parentheses) {
    size_t depth = 200000;
    size_t n = 2 * depth + 64;
    char *src = malloc(n);
    size_t len = (size_t)sprintf(src, "model m {\n let x = ");
    memset(src + len, '(', depth);
    len += depth;
    len += (size_t)sprintf(src + len, "y");
    memset(src + len, ')', depth);
    len += depth;
    len += (size_t)sprintf(src + len, "\n}\n");
    double t0 = now();
    cr_assert_null(parse_n(src, len));
    cr_assert_lt(now() - t0, 5.0);
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg_has(0, 2, 0, "nested too deeply");
    Loc l;
    diag_message(D, 0, NULL, &l);
    cr_assert_eq(l.line, 2);
    free(src);
}

Test(parser, moderately_nested_parentheses_are_fine) {
    size_t depth = 900;
    char *src = malloc(3 * depth + 64);
    size_t len = (size_t)sprintf(src, "model m {\n let x = ");
    for (size_t i = 0; i < depth; i++) len += (size_t)sprintf(src + len, "-(");
    len += (size_t)sprintf(src + len, "y");
    memset(src + len, ')', depth);
    len += depth;
    len += (size_t)sprintf(src + len, "\n}\n");
    AstFile *f = parse_n(src, len);
    if (!f) dump_diags();
    cr_assert_not_null(f);
    cr_assert_eq(f->stmts->value->depth, 901);
    free(src);
}

Test(parser, megabyte_of_minus_signs) {
    size_t n = 1 << 20;
    char *src = malloc(n + 64);
    size_t len = (size_t)sprintf(src, "model m {\n let x = ");
    memset(src + len, '-', n);
    len += n;
    len += (size_t)sprintf(src + len, "y\n}\n");
    double t0 = now();
    cr_assert_null(parse_n(src, len));
    cr_assert_lt(now() - t0, 5.0);
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg_has(0, 0, 0, "nested too deeply");
    diag_clear(D);
    /* and bare, at the top level */
    memset(src, '-', n);
    cr_assert_null(parse_n(src, n));
    cr_assert_geq(diag_error_count(D), 1);
    free(src);
}

Test(parser, megabyte_name) {
    size_t n = 1 << 20;
    char *src = malloc(2 * n + 128);
    size_t len = (size_t)sprintf(src, "model m {\n input ");
    memset(src + len, 'a', n);
    len += n;
    len += (size_t)sprintf(src + len, " : f32[2]\n let y = ");
    memset(src + len, 'a', n);
    len += n;
    len += (size_t)sprintf(src + len, " * 2\n output y\n}\n");
    double t0 = now();
    AstFile *f = parse_n(src, len);
    cr_assert_lt(now() - t0, 5.0);
    cr_assert_not_null(f);
    cr_assert_eq(strlen(f->stmts->name), n);
    cr_assert_eq(f->stmts->next->value->loc.line, 3);
    cr_assert_eq(f->stmts->next->value->loc.col, (int)n + 11); /* the '*' */
    /* in an error message it is shortened */
    len = (size_t)sprintf(src, "model m {\n input x : ");
    memset(src + len, 'b', n);
    len += n;
    len += (size_t)sprintf(src + len, "[2]\n}\n");
    cr_assert_null(parse_n(src, len));
    Loc l;
    const char *m = diag_message(D, 0, NULL, &l);
    cr_assert_lt(strlen(m), 100);
    cr_assert(strncmp(m, "unknown dtype 'bbbb", 19) == 0, "%s", m);
    free(src);
}

Test(parser, megabyte_number_and_string_and_comment) {
    size_t n = 1 << 20;
    char *src = malloc(n + 128);
    size_t len = (size_t)sprintf(src, "model m {\n let x = ");
    memset(src + len, '7', n);
    len += n;
    len += (size_t)sprintf(src + len, "\n}\n");
    double t0 = now();
    AstFile *f = parse_n(src, len);
    cr_assert_not_null(f);
    cr_assert(f->stmts->value->num.overflow);
    len = (size_t)sprintf(src, "model m {\n weights \"");
    memset(src + len, 's', n);
    len += n;
    len += (size_t)sprintf(src + len, "\"\n}\n");
    f = parse_n(src, len);
    cr_assert_not_null(f);
    cr_assert_eq(strlen(f->stmts->str), n);
    /* unterminated, 1 MB long */
    len = (size_t)sprintf(src, "model m {\n weights \"");
    memset(src + len, 's', n);
    len += n;
    cr_assert_null(parse_n(src, len));
    expect_msg(0, 2, 10, "unterminated string");
    diag_clear(D);
    len = (size_t)sprintf(src, "# ");
    memset(src + len, 'c', n);
    len += n;
    len += (size_t)sprintf(src + len, "\nmodel m {}");
    cr_assert_not_null(parse_n(src, len));
    cr_assert_lt(now() - t0, 5.0);
    free(src);
}

Test(parser, long_chain_depth_error) {
    size_t terms = 5000;
    char *src = malloc(terms * 2 + 64);
    size_t len = (size_t)sprintf(src, "model m {\n let y = x");
    for (size_t i = 1; i < terms; i++) len += (size_t)sprintf(src + len, "+x");
    len += (size_t)sprintf(src + len, "\n let z = y\n let w = (\n}\n");
    cr_assert_null(parse_n(src, len));
    /* reported once, at the operator that makes the tree 1001 high, and the
     * parse goes on (the error on line 4 is reported too) */
    cr_assert_eq(diag_error_count(D), 2);
    expect_msg(0, 2, 9 + 2 * 1000, "expression nested too deeply (more than 1000 levels)");
    expect_msg_has(1, 5, 1, "syntax error: unexpected '}'");
    free(src);
}

Test(parser, chain_of_1000_is_fine) {
    size_t terms = 1000;
    char *src = malloc(terms * 2 + 64);
    size_t len = (size_t)sprintf(src, "model m {\n let y = x");
    for (size_t i = 1; i < terms; i++) len += (size_t)sprintf(src + len, "*x");
    len += (size_t)sprintf(src + len, "\n}\n");
    AstFile *f = parse_n(src, len);
    cr_assert_not_null(f);
    cr_assert_eq(f->stmts->value->depth, 1000);
    diag_clear(D);
    len = (size_t)sprintf(src, "model m {\n let y = x");
    for (size_t i = 1; i < terms + 1; i++) len += (size_t)sprintf(src + len, "*x");
    len += (size_t)sprintf(src + len, "\n}\n");
    cr_assert_null(parse_n(src, len));
    cr_assert_eq(diag_error_count(D), 1);
    free(src);
}

Test(parser, deep_unary_minus_depth_error) {
    size_t n = 3000;
    char *src = malloc(n + 64);
    size_t len = (size_t)sprintf(src, "model m {\n let y = ");
    memset(src + len, '-', n);
    len += n;
    len += (size_t)sprintf(src + len, "x\n}\n");
    cr_assert_null(parse_n(src, len));
    cr_assert_eq(diag_error_count(D), 1);
    /* the 1001st minus from the inside */
    expect_msg(0, 2, 10 + (int)n - 1000, "expression nested too deeply (more than 1000 levels)");
    free(src);
}

Test(parser, deep_lists) {
    size_t n = 1500;
    char *src = malloc(2 * n + 64);
    size_t len = (size_t)sprintf(src, "model m {\n let y = f(a=");
    memset(src + len, '[', n);
    len += n;
    memset(src + len, ']', n);
    len += n;
    len += (size_t)sprintf(src + len, ")\n}\n");
    cr_assert_null(parse_n(src, len));
    cr_assert_eq(diag_error_count(D), 1);
    expect_msg_has(0, 0, 0, "nested too deeply");
    free(src);
}

Test(parser, hundred_thousand_statements) {
    size_t n = 100000;
    char *src = malloc(n * 32 + 64);
    size_t len = (size_t)sprintf(src, "model m {\n input x0 : f32[4]\n");
    for (size_t i = 1; i <= n; i++) len += (size_t)sprintf(src + len, " let x%zu = x%zu + 1\n", i, i - 1);
    len += (size_t)sprintf(src + len, " output x%zu\n}\n", n);
    double t0 = now();
    AstFile *f = parse_n(src, len);
    cr_assert_lt(now() - t0, 5.0);
    cr_assert_not_null(f);
    size_t count = 0;
    const Stmt *last = NULL;
    for (const Stmt *s = f->stmts; s; s = s->next) count++, last = s;
    cr_assert_eq(count, n + 2);
    cr_assert_eq(last->kind, ST_OUTPUT);
    cr_assert_eq(last->loc.line, (int)n + 3);
    free(src);
}

Test(parser, many_errors_stop_at_the_cap) {
    size_t n = 10000;
    char *src = malloc(n * 16 + 64);
    size_t len = (size_t)sprintf(src, "model m {\n");
    for (size_t i = 0; i < n; i++) len += (size_t)sprintf(src + len, " let = )\n");
    len += (size_t)sprintf(src + len, "}\n");
    cr_assert_null(parse_n(src, len));
    cr_assert_eq(diag_error_count(D), DIAG_MAX_ERRORS);
    free(src);
}

/* ---- reentrancy --------------------------------------------------------- */

static void *parse_many(void *arg) {
    int *ok = arg;
    for (int i = 0; i < 200; i++) {
        Arena *a = arena_create();
        Diag *d = diag_create();
        AstFile *f = dsg_parse(a, d, "t.dsg", spec_example, strlen(spec_example));
        if (!f || diag_count(d) != 0) *ok = 0;
        static const char bad[] = "model m {\n let = \n}";
        AstFile *g = dsg_parse(a, d, "u.dsg", bad, sizeof bad - 1);
        if (g || diag_error_count(d) != 1) *ok = 0;
        diag_destroy(d);
        arena_destroy(a);
    }
    return NULL;
}

Test(parser, concurrent_parses) {
    pthread_t t[4];
    int ok[4] = {1, 1, 1, 1};
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, parse_many, &ok[i]);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) cr_assert(ok[i]);
}

Test(parser, locations_carry_the_file_name) {
    AstFile *f = dsg_parse(A, D, "dir/model.dsg", "model m { dim B }", 17);
    cr_assert_not_null(f);
    cr_assert_str_eq(f->stmts->loc.file, "dir/model.dsg");
    cr_assert_str_eq(f->model_loc.file, "dir/model.dsg");
}
