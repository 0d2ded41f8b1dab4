/* The frontend: DSG source to a typed, shape-checked graph.
 *
 * parse (grammar/) -> lower (names, fn inlining, weak literals, argument
 * binding against the operator schemas) -> ir_infer per node -> ir_verify.
 * Every problem is reported into the Diag with its source location; the
 * result is NULL when there was any error.  All memory is in the arena. */
#ifndef DSC_FRONTEND_FRONTEND_H
#define DSC_FRONTEND_FRONTEND_H

#include <stddef.h>

#include "../ir/ir.h"
#include "ast.h"

/* Files larger than this are refused before parsing. */
#define FE_MAX_SOURCE_BYTES ((size_t)256 << 20)
/* Lowering stops with an error past this many graph nodes (fn inlining can
 * grow a graph exponentially). */
#define FE_MAX_NODES 2000000

Graph *fe_lower(Arena *a, Diag *d, const char *file, const AstFile *ast);
Graph *fe_compile_source(Arena *a, Diag *d, const char *file, const char *src, size_t len);
/* Reads `path` into the arena (the text stays registered with the Diag). */
Graph *fe_compile_file(Arena *a, Diag *d, const char *path);

#endif
