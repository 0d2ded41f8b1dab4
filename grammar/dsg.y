/* The DSG parser: a pure (reentrant) bison parser with locations that builds
 * the AST of frontend/ast.h in the compilation's arena.
 *
 * Why this shape:
 *  - Pure parser + reentrant scanner, all state in one DsgParser on the stack
 *    of dsg_parse: two parses may run at once on different threads.
 *  - Every node comes from the arena, so error paths leak nothing and no
 *    %destructor is needed.
 *  - Canonical LR tables with default reductions only in consistent states:
 *    errors are detected on the exact token, so the "expecting ..." lists are
 *    exact, while a rule ending in '}' is reduced at once (an error after a
 *    model's '}' does not reopen its body).
 *  - Each error rule `X: X error` also has an alternative `X error SYNC` with a
 *    token the scanner never returns.  That makes its state inconsistent, so
 *    it is reduced only when the lookahead can really start what follows
 *    (the next statement, 'let'/'return', 'fn'/'model').  Only then does its
 *    action call yyerrok, which cannot loop, and every bad statement of a file
 *    is reported, even one right after another error.
 *  - Error recovery points: a model statement (sync on the next statement
 *    keyword or '}'), a `let` in an fn body, a top-level item (sync on 'fn',
 *    'model' or end of file) and a bad model header (sync on '{').
 *  - Keywords in declaring positions get their own alternatives so the user
 *    sees "'input' is a keyword and cannot be used as a name" and parsing goes
 *    on; a NAME in dtype position becomes "unknown dtype 'f64'".
 *  - Robustness: the bison stack is capped (YYMAXDEPTH) and its exhaustion is
 *    reported as a located error; every expression node carries its height and
 *    a tree higher than DSG_MAX_EXPR_DEPTH is reported once, so later stages may
 *    walk expressions recursively.  The scanner stops (returns end of file)
 *    once the Diag is full. */

%code requires {
#include <stdbool.h>
#include <stddef.h>

#include "frontend/ast.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* The deepest expression tree the parser accepts. */
enum { DSG_MAX_EXPR_DEPTH = 1000 };

typedef struct { Stmt *head, *tail; } DsgStmtList;
typedef struct { Arg *head, *tail; } DsgArgList;
typedef struct { Expr *head, *tail; int n, depth; } DsgExprList;
typedef struct { AstAttr *head, *tail; } DsgAttrList;
typedef struct { FnParam *head, *tail; int n; } DsgParamList;
typedef struct { FnDef *head, *tail; } DsgFnList;
typedef struct { const char *name; Loc loc; } DsgName;

/* State shared by the scanner and the parser during one dsg_parse call. */
typedef struct DsgParser {
    Arena *arena;
    Diag *diag;
    const char *file;     /* arena copy, used in every Loc */
    int line, col;        /* scanner position of the next byte */
    Loc eof_loc;          /* where the end of file is */
    const char *tok_text; /* text of the last NAME, NUMBER or DTYPE token */
    int errors;           /* errors this parse reported */
    bool top_error;       /* a syntax error was recovered at file level */
    int fn_errors;        /* `errors` when the current fn body began */
    AstFile *result;
} DsgParser;

/* Reports an error of this parse (counted even when the Diag is full). */
void dsg_parse_error(DsgParser *ps, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
}

%code top {
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
}

%define api.pure full
%define api.prefix {dsg_yy}
%define api.token.prefix {TK_}
%define api.location.type {Loc}
%define parse.error custom
%define lr.type canonical-lr
%define lr.default-reduction consistent
%locations
%param {yyscan_t scanner}
%parse-param {DsgParser *ps}

%union {
    const char *str;
    DType dtype;
    Expr *expr;
    Arg *arg;
    AstAttr *attr;
    AstType type;
    FnDef *fn;
    DsgName dname;
    DsgStmtList stmts;
    DsgArgList args;
    DsgExprList exprs;
    DsgAttrList attrs;
    DsgParamList params;
    DsgFnList fns;
}

%code {
#include "ir/assert.h"

/* Deep enough for any expression under DSG_MAX_EXPR_DEPTH (a parenthesised
 * operand costs at most three entries per level); deeper input is reported as
 * "expression nested too deeply (parser stack exhausted)". */
#define YYMAXDEPTH 10000
#define YYINITDEPTH 200

#define YYLLOC_DEFAULT(Cur, Rhs, N)                                                               \
    do {                                                                                           \
        if (N)                                                                                     \
            (Cur) = YYRHSLOC(Rhs, 1);                                                              \
        else                                                                                       \
            (Cur) = YYRHSLOC(Rhs, 0);                                                              \
    } while (0)

int dsg_yylex(DSG_YYSTYPE *lval, Loc *lloc, yyscan_t scanner);
static void dsg_yyerror(Loc *loc, yyscan_t scanner, DsgParser *ps, const char *msg);

static Expr *mk_expr(DsgParser *ps, ExprKind kind, Loc loc);
static Expr *mk_num(DsgParser *ps, const char *text, Loc loc);
static Expr *mk_bin(DsgParser *ps, char op, Expr *lhs, Expr *rhs, Loc loc);
static Expr *mk_neg(DsgParser *ps, Expr *operand, Loc loc);
static Expr *mk_call(DsgParser *ps, const char *callee, Loc loc, DsgArgList args);
static Expr *mk_list(DsgParser *ps, Loc loc, DsgExprList items);
static Arg *mk_arg(DsgParser *ps, const char *name, Loc loc, Expr *value);
static Stmt *mk_stmt(DsgParser *ps, StmtKind kind, Loc loc, DsgName name);
static DsgStmtList one_stmt(Stmt *s);
static DsgExprList expr_list_add(DsgExprList l, Expr *e);
static DsgName keyword_as_name(DsgParser *ps, const char *kw, Loc loc);
static const char *short_text(const char *s, char *buf, size_t size);
}

%token END 0 "end of file"
%token <str> NAME "name"
%token <str> NUMBER "number"
%token <str> STRING "string"
%token <dtype> DTYPE "dtype"
%token '(' ')' '[' ']' '{' '}' ',' ':' '=' '@' '+' '-' '*' '/'
%token LE "'<='"
%token MODEL "'model'"
%token FN "'fn'"
%token LET "'let'"
%token RETURN "'return'"
%token INPUT "'input'"
%token PARAM "'param'"
%token OUTPUT "'output'"
%token DIM "'dim'"
%token WEIGHTS "'weights'"
%token FROM "'from'"
%token TRUE "'true'"
%token FALSE "'false'"
%token SYNC "<never returned>"

%left '+' '-'
%left '*' '/'
%precedence UMINUS

%type <fns> fn_defs
%type <fn> fn_def fn_head
%type <params> fn_params_opt fn_params
%type <stmts> fn_lets stmts stmt dim_decls
%type <dname> decl_name
%type <str> keyword from_opt
%type <stmts> dim_decl
%type <type> type dtype_word
%type <exprs> dims_opt dims values_opt values
%type <attrs> attrs
%type <attr> attr
%type <expr> expr value
%type <args> args_opt args
%type <arg> arg

%start file

%%

file
    : fn_defs model_def
        { ps->result->fns = $1.head; }
    | fn_defs
        {
            ps->result->fns = $1.head;
            if (!ps->top_error)
                dsg_parse_error(ps, ps->eof_loc, "expected a 'model' definition");
        }
    ;

fn_defs
    : %empty
        { $$ = (DsgFnList){0}; }
    | fn_defs fn_def
        {
            $$ = $1;
            if ($2) {
                if ($$.tail) $$.tail->next = $2; else $$.head = $2;
                $$.tail = $2;
            }
        }
    | fn_defs error
        { $$ = $1; ps->top_error = true; yyerrok; }
    | fn_defs error SYNC
        { $$ = $1; }
    ;

/* ---- fn definitions ------------------------------------------------------ */

fn_head
    : FN decl_name '(' fn_params_opt ')' '{'
        {
            FnDef *f = arena_alloc(ps->arena, sizeof *f);
            f->name = $2.name;
            f->loc = $2.loc;
            f->params = $4.head;
            f->nparams = $4.n;
            ps->fn_errors = ps->errors;
            $$ = f;
        }
    ;

fn_def
    : fn_head fn_lets RETURN expr '}'
        {
            $$ = $1;
            $$->body = $2.head;
            $$->ret = $4;
            $$->ret_loc = @3;
        }
    | fn_head fn_lets '}'
        {
            if (ps->errors == ps->fn_errors)
                dsg_parse_error(ps, @3, "fn '%s' has no 'return'", $1->name);
            $$ = NULL;
        }
    ;

fn_params_opt
    : %empty                { $$ = (DsgParamList){0}; }
    | fn_params             { $$ = $1; }
    ;

fn_params
    : decl_name
        {
            FnParam *p = arena_alloc(ps->arena, sizeof *p);
            p->name = $1.name;
            p->loc = $1.loc;
            $$ = (DsgParamList){p, p, 1};
        }
    | fn_params ',' decl_name
        {
            FnParam *p = arena_alloc(ps->arena, sizeof *p);
            p->name = $3.name;
            p->loc = $3.loc;
            $$ = $1;
            $$.tail->next = p;
            $$.tail = p;
            $$.n++;
        }
    ;

fn_lets
    : %empty
        { $$ = (DsgStmtList){0}; }
    | fn_lets LET decl_name '=' expr
        {
            Stmt *s = mk_stmt(ps, ST_LET, @2, $3);
            s->value = $5;
            $$ = $1;
            if ($$.tail) $$.tail->next = s; else $$.head = s;
            $$.tail = s;
        }
    | fn_lets error
        { $$ = $1; yyerrok; }
    | fn_lets error SYNC
        { $$ = $1; }
    ;

/* ---- the model ----------------------------------------------------------- */

model_def
    : model_head stmts '}'
        { ps->result->stmts = $2.head; }
    ;

model_head
    : MODEL decl_name '{'
        {
            ps->result->model_name = $2.name;
            ps->result->model_loc = $2.loc;
        }
    | MODEL error '{'
        { yyerrok; }
    ;

stmts
    : %empty
        { $$ = (DsgStmtList){0}; }
    | stmts stmt
        {
            $$ = $1;
            if ($2.head) {
                if ($$.tail) $$.tail->next = $2.head; else $$.head = $2.head;
                $$.tail = $2.tail;
            }
        }
    | stmts error
        { $$ = $1; yyerrok; }
    | stmts error SYNC
        { $$ = $1; }
    ;

stmt
    : WEIGHTS STRING
        {
            Stmt *s = mk_stmt(ps, ST_WEIGHTS, @1, (DsgName){0});
            s->str = $2;
            s->str_loc = @2;
            $$ = one_stmt(s);
        }
    | DIM dim_decls
        {
            for (Stmt *s = $2.head; s; s = s->next) s->loc = @1;
            $$ = $2;
        }
    | INPUT decl_name ':' type
        {
            Stmt *s = mk_stmt(ps, ST_INPUT, @1, $2);
            s->type = $4;
            $$ = one_stmt(s);
        }
    | PARAM decl_name ':' type from_opt attrs
        {
            Stmt *s = mk_stmt(ps, ST_PARAM, @1, $2);
            s->type = $4;
            s->str = $5;
            if ($5) s->str_loc = @5;
            s->attrs = $6.head;
            $$ = one_stmt(s);
        }
    | LET decl_name '=' expr attrs
        {
            Stmt *s = mk_stmt(ps, ST_LET, @1, $2);
            s->value = $4;
            s->attrs = $5.head;
            $$ = one_stmt(s);
        }
    | OUTPUT decl_name
        { $$ = one_stmt(mk_stmt(ps, ST_OUTPUT, @1, $2)); }
    | OUTPUT decl_name '=' expr attrs
        {
            Stmt *s = mk_stmt(ps, ST_OUTPUT, @1, $2);
            s->value = $4;
            s->attrs = $5.head;
            $$ = one_stmt(s);
        }
    ;

dim_decls
    : dim_decl                  { $$ = $1; }
    | dim_decls ',' dim_decl    { $$ = $1; $$.tail->next = $3.head; $$.tail = $3.tail; }
    ;

dim_decl
    : decl_name
        { $$ = one_stmt(mk_stmt(ps, ST_DIM, @1, $1)); }
    | decl_name LE NUMBER
        {
            /* whether it is an integer is the frontend's to check */
            Stmt *s = mk_stmt(ps, ST_DIM, @1, $1);
            s->bound = mk_num(ps, $3, @3);
            $$ = one_stmt(s);
        }
    ;

from_opt
    : %empty            { $$ = NULL; }
    | FROM STRING       { $$ = $2; @$ = @2; }
    ;

attrs
    : %empty            { $$ = (DsgAttrList){0}; }
    | attrs attr
        {
            $$ = $1;
            if ($$.tail) $$.tail->next = $2; else $$.head = $2;
            $$.tail = $2;
        }
    ;

attr
    : '@' NAME
        {
            $$ = arena_alloc(ps->arena, sizeof *$$);
            $$->name = $2;
            $$->loc = @1;
        }
    | '@' NAME '(' args_opt ')'
        {
            $$ = arena_alloc(ps->arena, sizeof *$$);
            $$->name = $2;
            $$->loc = @1;
            $$->args = $4.head;
        }
    ;

/* A name in a declaring position; a keyword there is reported and used. */
decl_name
    : NAME              { $$ = (DsgName){$1, @1}; }
    | keyword           { $$ = keyword_as_name(ps, $1, @1); }
    ;

keyword
    : MODEL     { $$ = "model"; }
    | FN        { $$ = "fn"; }
    | LET       { $$ = "let"; }
    | RETURN    { $$ = "return"; }
    | INPUT     { $$ = "input"; }
    | PARAM     { $$ = "param"; }
    | OUTPUT    { $$ = "output"; }
    | DIM       { $$ = "dim"; }
    | WEIGHTS   { $$ = "weights"; }
    | FROM      { $$ = "from"; }
    | TRUE      { $$ = "true"; }
    | FALSE     { $$ = "false"; }
    | DTYPE     { $$ = dtype_name($1); }
    ;

/* ---- types --------------------------------------------------------------- */

type
    : dtype_word
        { $$ = $1; $$.scalar = true; }
    | dtype_word '[' dims_opt ']'
        {
            $$ = $1;
            $$.dims = $3.head;
            $$.rank = $3.n;
        }
    ;

dtype_word
    : DTYPE
        { $$ = (AstType){.valid = true, .dtype = $1, .loc = @1}; }
    | NAME
        {
            char buf[48];
            dsg_parse_error(ps, @1, "unknown dtype '%s'", short_text($1, buf, sizeof buf));
            $$ = (AstType){.valid = false, .dtype = DT_F32, .loc = @1};
        }
    ;

dims_opt
    : %empty            { $$ = (DsgExprList){0}; }
    | dims              { $$ = $1; }
    ;

dims
    : expr              { $$ = expr_list_add((DsgExprList){0}, $1); }
    | dims ',' expr     { $$ = expr_list_add($1, $3); }
    ;

/* ---- expressions --------------------------------------------------------- */

expr
    : expr '+' expr             { $$ = mk_bin(ps, '+', $1, $3, @2); }
    | expr '-' expr             { $$ = mk_bin(ps, '-', $1, $3, @2); }
    | expr '*' expr             { $$ = mk_bin(ps, '*', $1, $3, @2); }
    | expr '/' expr             { $$ = mk_bin(ps, '/', $1, $3, @2); }
    | '-' expr %prec UMINUS     { $$ = mk_neg(ps, $2, @1); }
    | '(' expr ')'              { $$ = $2; }
    | NAME
        {
            $$ = mk_expr(ps, EX_NAME, @1);
            $$->name = $1;
        }
    | NUMBER                    { $$ = mk_num(ps, $1, @1); }
    | NAME '(' args_opt ')'     { $$ = mk_call(ps, $1, @1, $3); }
    ;

args_opt
    : %empty            { $$ = (DsgArgList){0}; }
    | args              { $$ = $1; }
    ;

args
    : arg               { $$ = (DsgArgList){$1, $1}; }
    | args ',' arg      { $$ = $1; $$.tail->next = $3; $$.tail = $3; }
    ;

arg
    : expr              { $$ = mk_arg(ps, NULL, $1->loc, $1); }
    | DTYPE
        {
            Expr *e = mk_expr(ps, EX_DTYPE, @1);
            e->dtype = $1;
            $$ = mk_arg(ps, NULL, @1, e);
        }
    | NAME '=' value    { $$ = mk_arg(ps, $1, @1, $3); }
    ;

value
    : expr              { $$ = $1; }
    | STRING
        {
            $$ = mk_expr(ps, EX_STRING, @1);
            $$->str = $1;
        }
    | TRUE
        {
            $$ = mk_expr(ps, EX_BOOL, @1);
            $$->boolean = true;
        }
    | FALSE
        {
            $$ = mk_expr(ps, EX_BOOL, @1);
            $$->boolean = false;
        }
    | DTYPE
        {
            $$ = mk_expr(ps, EX_DTYPE, @1);
            $$->dtype = $1;
        }
    | '[' values_opt ']'    { $$ = mk_list(ps, @1, $2); }
    ;

values_opt
    : %empty            { $$ = (DsgExprList){0}; }
    | values            { $$ = $1; }
    ;

values
    : value             { $$ = expr_list_add((DsgExprList){0}, $1); }
    | values ',' value  { $$ = expr_list_add($1, $3); }
    ;

%%

#include "dsg.lex.h"

void dsg_parse_error(DsgParser *ps, Loc loc, const char *fmt, ...) {
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    DSC_ASSERT(msg && "out of memory");
    diag_error(ps->diag, loc, "%s", msg);
    free(msg);
    ps->errors++;
}

/* `s`, or its first bytes and "..." when it is long (names may be 1 MB). */
static const char *short_text(const char *s, char *buf, size_t size) {
    size_t n = strlen(s);
    if (n < size) return s;
    snprintf(buf, size, "%.*s...", (int)(size - 4), s);
    return buf;
}

static void dsg_yyerror(Loc *loc, yyscan_t scanner, DsgParser *ps, const char *msg) {
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0)
        dsg_parse_error(ps, *loc, "expression nested too deeply (parser stack exhausted)");
    else
        dsg_parse_error(ps, *loc, "%s", msg);
}

/* "syntax error: unexpected X[, expecting A, B or C]" with at most five
 * expected tokens (more would not help the reader). */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, DsgParser *ps) {
    (void)scanner;
    enum { MAX_EXPECTED = 5 };
    yysymbol_kind_t all[YYNTOKENS], expected[MAX_EXPECTED];
    int nall = yypcontext_expected_tokens(ctx, all, YYNTOKENS), n = 0;
    if (nall < 0) return nall;
    /* Where a name is declared, keywords are accepted only to be reported as
     * misused: do not list them as expected. */
    bool name = false, input = false;
    for (int i = 0; i < nall; i++) {
        if (all[i] == YYSYMBOL_NAME) name = true;
        if (all[i] == YYSYMBOL_INPUT) input = true;
    }
    bool decl = name && input;
    for (int i = 0; i < nall; i++) {
        if (decl && (all[i] == YYSYMBOL_DTYPE || (all[i] >= YYSYMBOL_MODEL && all[i] <= YYSYMBOL_FALSE)))
            continue;
        if (all[i] == YYSYMBOL_SYNC) continue;
        if (n == MAX_EXPECTED) {
            n = 0;
            break;
        }
        expected[n++] = all[i];
    }
    yysymbol_kind_t tok = yypcontext_token(ctx);
    char what[96], buf[48];
    const char *text = ps->tok_text ? short_text(ps->tok_text, buf, sizeof buf) : "";
    switch (tok) {
    case YYSYMBOL_NAME: snprintf(what, sizeof what, "name '%s'", text); break;
    case YYSYMBOL_NUMBER: snprintf(what, sizeof what, "number '%s'", text); break;
    case YYSYMBOL_DTYPE: snprintf(what, sizeof what, "'%s'", text); break;
    default: snprintf(what, sizeof what, "%s", yysymbol_name(tok)); break;
    }
    char msg[512];
    int len = snprintf(msg, sizeof msg, "syntax error: unexpected %s", what);
    for (int i = 0; i < n; i++) {
        const char *sep = i == 0 ? ", expecting " : i == n - 1 ? " or " : ", ";
        len += snprintf(msg + len, sizeof msg - (size_t)len, "%s%s", sep,
                        yysymbol_name(expected[i]));
    }
    dsg_parse_error(ps, *yypcontext_location(ctx), "%s", msg);
    return 0;
}

/* ---- AST builders -------------------------------------------------------- */

static void set_depth(DsgParser *ps, Expr *e, int child_depth) {
    e->depth = child_depth + 1;
    if (e->depth == DSG_MAX_EXPR_DEPTH + 1)
        dsg_parse_error(ps, e->loc, "expression nested too deeply (more than %d levels)",
                        DSG_MAX_EXPR_DEPTH);
}

static Expr *mk_expr(DsgParser *ps, ExprKind kind, Loc loc) {
    Expr *e = arena_alloc(ps->arena, sizeof *e);
    e->kind = kind;
    e->loc = loc;
    e->depth = 1;
    return e;
}

/* A number literal: integers (no '.' and no exponent) get ival, or overflow
 * when they do not fit in int64. */
static Expr *mk_num(DsgParser *ps, const char *text, Loc loc) {
    Expr *e = mk_expr(ps, EX_NUM, loc);
    e->num.text = text;
    e->num.is_int = strpbrk(text, ".eE") == NULL;
    if (e->num.is_int) {
        int64_t v = 0;
        for (const char *p = text; *p >= '0' && *p <= '9'; p++) {
            int dgt = *p - '0';
            if (v > (INT64_MAX - dgt) / 10) {
                e->num.overflow = true;
                break;
            }
            v = v * 10 + dgt;
        }
        e->num.ival = e->num.overflow ? 0 : v;
    }
    e->num.value = strtod(text, NULL);
    return e;
}

static Expr *mk_bin(DsgParser *ps, char op, Expr *lhs, Expr *rhs, Loc loc) {
    Expr *e = mk_expr(ps, EX_BIN, loc);
    e->bin.op = op;
    e->bin.lhs = lhs;
    e->bin.rhs = rhs;
    set_depth(ps, e, lhs->depth > rhs->depth ? lhs->depth : rhs->depth);
    return e;
}

static Expr *mk_neg(DsgParser *ps, Expr *operand, Loc loc) {
    Expr *e = mk_expr(ps, EX_NEG, loc);
    e->operand = operand;
    set_depth(ps, e, operand->depth);
    return e;
}

static Expr *mk_call(DsgParser *ps, const char *callee, Loc loc, DsgArgList args) {
    Expr *e = mk_expr(ps, EX_CALL, loc);
    e->call.callee = callee;
    e->call.args = args.head;
    int d = 0;
    for (Arg *a = args.head; a; a = a->next)
        if (a->value->depth > d) d = a->value->depth;
    set_depth(ps, e, d);
    return e;
}

static Expr *mk_list(DsgParser *ps, Loc loc, DsgExprList items) {
    Expr *e = mk_expr(ps, EX_LIST, loc);
    e->list.items = items.head;
    e->list.n = items.n;
    set_depth(ps, e, items.depth);
    return e;
}

static Arg *mk_arg(DsgParser *ps, const char *name, Loc loc, Expr *value) {
    Arg *a = arena_alloc(ps->arena, sizeof *a);
    a->name = name;
    a->loc = loc;
    a->value = value;
    return a;
}

static Stmt *mk_stmt(DsgParser *ps, StmtKind kind, Loc loc, DsgName name) {
    Stmt *s = arena_alloc(ps->arena, sizeof *s);
    s->kind = kind;
    s->loc = loc;
    s->name = name.name;
    s->name_loc = name.loc;
    return s;
}

static DsgStmtList one_stmt(Stmt *s) { return (DsgStmtList){s, s}; }

static DsgExprList expr_list_add(DsgExprList l, Expr *e) {
    if (l.tail) l.tail->next = e; else l.head = e;
    l.tail = e;
    l.n++;
    if (e->depth > l.depth) l.depth = e->depth;
    return l;
}

static DsgName keyword_as_name(DsgParser *ps, const char *kw, Loc loc) {
    dsg_parse_error(ps, loc, "'%s' is a keyword and cannot be used as a name", kw);
    return (DsgName){kw, loc};
}

/* ---- entry point --------------------------------------------------------- */

AstFile *dsg_parse(Arena *a, Diag *d, const char *file, const char *src, size_t len) {
    if (!file) file = "<input>";
    if (!src) src = "", len = 0;
    diag_add_source(d, file, src, len);
    DsgParser ps = {
        .arena = a,
        .diag = d,
        .file = arena_strdup(a, file),
        .line = 1,
        .col = 1,
    };
    ps.eof_loc = (Loc){ps.file, 1, 1};
    ps.result = arena_alloc(a, sizeof *ps.result);
    if (len > (size_t)INT32_MAX / 2) {
        dsg_parse_error(&ps, (Loc){ps.file, 1, 1}, "file too large (%zu bytes)", len);
        return NULL;
    }
    yyscan_t scanner;
    DSC_ASSERT(dsg_yylex_init_extra(&ps, &scanner) == 0 && "out of memory");
    YY_BUFFER_STATE buf = dsg_yy_scan_bytes(src, (int)len, scanner);
    int rc = dsg_yyparse(scanner, &ps);
    dsg_yy_delete_buffer(buf, scanner);
    dsg_yylex_destroy(scanner);
    if (rc != 0 || ps.errors > 0) return NULL;
    return ps.result;
}
