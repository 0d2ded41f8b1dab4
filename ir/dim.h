/* Symbolic dimensions.
 *
 * A tensor's shape is an array of DimIds.  A DimId names an interned, canonical
 * integer expression over the model's `dim` symbols: a polynomial with int64
 * coefficients whose variables ("atoms") are dim symbols or opaque terms
 * (an exact division, min or max that could not be simplified).  Because
 * expressions are canonical and interned, two shapes are equal exactly when
 * their DimIds are equal: `B*S` and `S*B` are the same id.
 *
 * Construction never fails loudly: on overflow or when an expression grows past
 * the complexity limits it returns DIM_INVALID, which every operation
 * propagates; callers report the error where they know the context.
 * Evaluation binds symbols to numbers at run time and checks that every
 * division is exact. */
#ifndef DSC_IR_DIM_H
#define DSC_IR_DIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"

typedef int32_t DimId;
#define DIM_INVALID ((DimId)-1)

typedef struct DimTable DimTable;

DimTable *dim_table_create(Arena *a);

/* Symbols (`dim` declarations).  bound < 0 means no upper bound. */
int dim_declare(DimTable *t, const char *name, int64_t bound, Loc loc);
int dim_sym_count(const DimTable *t);
const char *dim_sym_name(const DimTable *t, int sym);
int64_t dim_sym_bound(const DimTable *t, int sym);
Loc dim_sym_loc(const DimTable *t, int sym);
int dim_sym_lookup(const DimTable *t, const char *name); /* -1 if absent */

DimId dim_const(DimTable *t, int64_t v);
DimId dim_sym(DimTable *t, int sym);
DimId dim_add(DimTable *t, DimId a, DimId b);
DimId dim_sub(DimTable *t, DimId a, DimId b);
DimId dim_mul(DimTable *t, DimId a, DimId b);
/* Exact integer division: simplified when the divisor divides every term,
 * otherwise an opaque atom checked for exactness at evaluation.  b == 0 -> invalid. */
DimId dim_div(DimTable *t, DimId a, DimId b);
/* Floor division and min/max, for shapes of slice, conv and pooling. */
DimId dim_floordiv(DimTable *t, DimId a, DimId b);
DimId dim_min(DimTable *t, DimId a, DimId b);
DimId dim_max(DimTable *t, DimId a, DimId b);

/* True (and *v set) when the expression is a constant. */
bool dim_is_const(const DimTable *t, DimId d, int64_t *v);
/* True when the expression is a single symbol (and *sym set). */
bool dim_is_sym(const DimTable *t, DimId d, int *sym);
/* True when the expression contains an opaque division, min or max. */
bool dim_has_opaque(const DimTable *t, DimId d);
/* True when every coefficient is >= 0 and no term is opaque subtraction-prone:
 * the expression is non-negative whenever all symbols are. */
bool dim_nonneg(const DimTable *t, DimId d);

/* Writes the expression as DSG scalar syntax (`B*S`, `S+3`, `(B*S)/4`).  min,
 * max and floor division, which DSG lacks, print as min(a,b), max(a,b) and
 * floordiv(a,b); they only occur in inferred shapes, never in printed source.
 * Returns the number of characters the full text needs (snprintf style). */
int dim_snprint(const DimTable *t, DimId d, char *buf, size_t n);
/* Same, allocated in the arena. */
const char *dim_str(const DimTable *t, DimId d, Arena *a);
/* `f32[B,S,768]`-style shape text in the arena. */
const char *dim_shape_str(const DimTable *t, const DimId *dims, int rank, Arena *a);

/* Structure, for code generation: an expression is the sum over its terms of
 * coefficient times the product of the term's atoms; an atom is a symbol or an
 * opaque exact division, floor division, min or max of two expressions. */
typedef enum { DIM_ATOM_SYM, DIM_ATOM_DIV, DIM_ATOM_FLOORDIV, DIM_ATOM_MIN, DIM_ATOM_MAX } DimAtomKind;
int dim_nterms(const DimTable *t, DimId d);
int64_t dim_term_coef(const DimTable *t, DimId d, int term);
int dim_term_natoms(const DimTable *t, DimId d, int term);
int dim_term_atom(const DimTable *t, DimId d, int term, int j);
/* The atom's kind; *sym for a symbol, *a and *b for the others. */
DimAtomKind dim_atom(const DimTable *t, int atom, int *sym, DimId *a, DimId *b);

/* Evaluates with symbol values `syms` (dim_sym_count entries).  Returns false
 * with a message in err (if non-NULL) on inexact division, division by zero or
 * overflow. */
bool dim_eval(const DimTable *t, DimId d, const int64_t *syms, int64_t *out, char *err,
              size_t errlen);

#endif
