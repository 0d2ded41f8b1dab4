/* The reference interpreter: runs a graph node by node on the host, in the
 * most obvious way, as the oracle every backend is checked against.
 *
 * Inputs and params are borrowed; outputs are new tensors owned by the caller
 * (free them with rt_tensor_free).  Every user-visible failure (a wrong input
 * shape, a missing weight, an out-of-range gather index, an integer division
 * by zero, an inexact dim division) is reported into the Diag and the call
 * returns false; nothing is leaked on any path. */
#ifndef DSC_RUNTIME_INTERP_H
#define DSC_RUNTIME_INTERP_H

#include <stdbool.h>
#include <stdint.h>

#include "../ir/diag.h"
#include "../ir/ir.h"
#include "tensor.h"

/* Binds the graph's dim symbols from the shapes of the inputs.  `inputs` are
 * in the order of the graph's OP_INPUT nodes (g->nodes order), `ninputs` of
 * them; `sym_values` receives dim_sym_count(g->dims) values.  Checks the count,
 * dtype, rank and every dimension of each input against its declared type,
 * the symbols' upper bounds, the consistency of repeated symbols, and that
 * every symbol the graph uses got a value (a symbol that appears only inside
 * an expression such as S*2 is solved from it when the expression is linear in
 * it).  Symbols the graph never uses are set to 0. */
bool rt_bind_dims(const Graph *g, Tensor *const *inputs, int ninputs, int64_t *sym_values, Diag *d);

/* Checks the params (in the order of the graph's OP_PARAM nodes) against their
 * declared types: each must be present (non-NULL) and have exactly the declared
 * dtype and shape.  Declared dims that are not constants are evaluated with
 * `sym_values` (from rt_bind_dims); pass NULL when the graph has no symbols. */
bool rt_check_params_bound(const Graph *g, Tensor *const *params, const int64_t *sym_values, Diag *d);

/* rt_check_params_bound for params whose types are constant (the usual case);
 * a param with a symbolic dim is reported as an error here -- use
 * rt_check_params_bound or rt_interp_run for those. */
bool rt_check_params(const Graph *g, Tensor *const *params, Diag *d);

/* Binds dims, checks params, evaluates every node in order and stores one new
 * tensor per graph output in outputs[0 .. g->noutputs) (g->outputs order).  On
 * failure every outputs[i] is NULL and the errors are in `d`. */
bool rt_interp_run(const Graph *g, Tensor *const *inputs, int ninputs, Tensor *const *params,
                   Tensor **outputs, Diag *d);

#endif
