/* A seeded random DSG model generator, for the pass-equivalence suite
 * (tests/unit/test_equivalence.c, which includes randgraph.c directly).
 *
 * randgraph_generate(seed) returns the source text of one valid model of
 * about 5-40 operations over a few inputs and params with small shapes, built
 * from realistic motifs (chains, diamonds, residual adds, linear/matmul
 * stacks, layernorm/softmax, attention written out and as the operator,
 * conv2d + batchnorm + relu + pooling, transposes and reshapes, identities
 * such as x*1 and x+0, cast chains, repeated subexpressions, constant-only
 * arithmetic, dead values, fn definitions with calls).  Most models are f32;
 * some are f16, bf16, i32 or i64.  Across a few hundred seeds every operator
 * of spec section 5 appears (the suite checks that from the compiled graphs).
 *
 * The same seed always gives the same text.  Values are kept numerically tame
 * for inputs uniform in [-1, 1) (integers in [-8, 8)), params uniform in
 * [-1, 1) scaled by 1/sqrt(last dim) for rank >= 2, batchnorm variances in
 * [0.5, 1.5) and gather indices in range: no log or sqrt of a negative, no
 * division by a value near zero, no overflow.  Comparisons, where-conditions
 * and float->int casts only read values that no legal pass can change by a
 * rounding (inputs, params and exact elementwise/layout results of them), so
 * the expected outputs of a pass are equal up to reassociation.
 *
 * The symbolic dims a model declares must be bound to the values in `binds`
 * (every one appears as a whole entry of some input's shape). */
#ifndef DSC_TESTS_RANDGRAPH_H
#define DSC_TESTS_RANDGRAPH_H

#include <stdint.h>

enum { RG_MAX_BINDS = 4 };

typedef struct {
    char *text; /* malloc'd DSG source of one model */
    int nbinds;
    const char *bind_names[RG_MAX_BINDS]; /* static strings */
    int64_t bind_values[RG_MAX_BINDS];
    const char *kind; /* the model's main dtype: "f32", "f16", "bf16", "i32" or "i64" */
    int nops;         /* operations written (fn bodies counted once per call) */
    char *motifs;     /* malloc'd: the motifs used, space separated, for messages */
} RandGraph;

/* Generates the model for `seed` (aborts only when memory runs out). */
void randgraph_generate(uint64_t seed, RandGraph *out);
void randgraph_free(RandGraph *m);

#endif
