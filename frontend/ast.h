/* The DSG abstract syntax tree, as the parser builds it.
 *
 * All nodes live in the compilation's arena.  Lists are singly linked through
 * `next` in source order.  Every node carries its location.  The tree is
 * purely syntactic: names are unresolved strings, and whether an argument is a
 * tensor or a compile-time value is decided by the frontend (frontend/lower.c). */
#ifndef DSC_FRONTEND_AST_H
#define DSC_FRONTEND_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "../ir/arena.h"
#include "../ir/diag.h"
#include "../ir/ir.h"

typedef enum {
    EX_NUM,    /* number literal */
    EX_NAME,   /* a (possibly dotted) name */
    EX_BIN,    /* lhs op rhs, op one of + - * / */
    EX_NEG,    /* - operand */
    EX_CALL,   /* callee(args) */
    EX_STRING, /* "..." (only as a named-argument value) */
    EX_BOOL,   /* true / false */
    EX_DTYPE,  /* f32 ... (as an argument or value) */
    EX_LIST,   /* [a, b, ...] */
} ExprKind;

typedef struct Expr Expr;
typedef struct Arg Arg;

struct Arg {
    const char *name; /* NULL for a positional argument */
    Loc loc;          /* of the name, or of the value when positional */
    Expr *value;
    Arg *next;
};

struct Expr {
    ExprKind kind;
    Loc loc;
    int depth;  /* height of this tree (a leaf is 1); the parser keeps it <= 1000 or reports */
    Expr *next; /* next item when this expression is in a list (EX_LIST items, type dims) */
    union {
        struct {
            double value;
            bool is_int;   /* written without '.' or exponent */
            int64_t ival;  /* the value when is_int and it fits in int64 */
            bool overflow; /* is_int but too large for int64 */
            const char *text;
        } num;
        const char *name; /* EX_NAME */
        struct {
            char op; /* '+', '-', '*', '/' */
            Expr *lhs, *rhs;
        } bin;
        Expr *operand; /* EX_NEG */
        struct {
            const char *callee;
            Arg *args;
        } call;
        const char *str; /* EX_STRING, unescaped */
        bool boolean;    /* EX_BOOL */
        DType dtype;     /* EX_DTYPE */
        struct {
            Expr *items; /* linked through next */
            int n;
        } list;
    };
};

/* `@name(args)` after a param, let or output. */
typedef struct AstAttr {
    const char *name;
    Loc loc;
    Arg *args;
    struct AstAttr *next;
} AstAttr;

typedef struct {
    bool valid;  /* false when the dtype was unknown (already reported) */
    DType dtype;
    Loc loc;
    bool scalar; /* written without brackets */
    Expr *dims;  /* linked through next; NULL with `[]` or scalar */
    int rank;
} AstType;

typedef enum { ST_WEIGHTS, ST_DIM, ST_INPUT, ST_PARAM, ST_LET, ST_OUTPUT } StmtKind;

typedef struct Stmt {
    StmtKind kind;
    Loc loc;          /* of the keyword */
    const char *name; /* dim, input, param, let, output */
    Loc name_loc;
    const char *str;  /* weights: the path; param: the `from` key or NULL */
    Loc str_loc;
    Expr *bound;      /* dim: the `<= N` literal, or NULL */
    AstType type;     /* input, param */
    Expr *value;      /* let, output (NULL for `output x`) */
    AstAttr *attrs;   /* param, let, output */
    struct Stmt *next;
} Stmt;

typedef struct FnParam {
    const char *name;
    Loc loc;
    struct FnParam *next;
} FnParam;

typedef struct FnDef {
    const char *name;
    Loc loc; /* of the name */
    FnParam *params;
    int nparams;
    Stmt *body; /* ST_LET statements */
    Expr *ret;
    Loc ret_loc;
    struct FnDef *next;
} FnDef;

typedef struct {
    FnDef *fns;
    const char *model_name;
    Loc model_loc;
    Stmt *stmts;
} AstFile;

/* Parses `src` (len bytes; may contain NUL bytes) named `file`.  Reports every
 * lexical and syntax error into `d` (after registering the source with it) and
 * returns the tree, or NULL when the file had errors. (grammar/dsg.y) */
AstFile *dsg_parse(Arena *a, Diag *d, const char *file, const char *src, size_t len);

#endif
