/* Running a lowered model (see exec.h): memory for every kernel buffer, the
 * kernels in program order through a backend's launcher, outputs copied out.
 *
 * The placement is computed apart from any memory (rt_exec_layout: a home per
 * value) so that the CUDA executor (runtime/cuda_exec.c), whose memory is on
 * the device, follows the same rules; rt_exec_run turns homes into host
 * addresses.  Where each value lives (the kernel buffer's node, views already
 * resolved by lowering; the same rules resolve the outputs here):
 *  - KB_INPUT, KB_PARAM: the caller's tensors (borrowed, never written);
 *  - KB_PLANNED with node->ann.buffer = b >= 0: the memory plan's buffer b,
 *    inside one arena of sum(buffer sizes) bytes at the bound dims, each
 *    buffer 64-byte aligned; values sharing a buffer share the memory, which is
 *    the plan's business (memplan guarantees their live ranges are disjoint or
 *    a legal in-place pair);
 *  - KB_PLANNED with ann.buffer == -1 (no memory plan: -O0/-O1 or memplan
 *    disabled; or a value lowering keeps in memory on its own, such as a
 *    rounding cast): a slot of its own in the arena, after the plan's buffers;
 *  - KB_DATA (data lowering made, a packed sparse weight): KBuf.data itself;
 *  - KB_CONSTANT (values of load-time constant groups): a slot in the
 *    constant block (one allocation; dims never change its layout).
 * Both blocks are zeroed.
 * A planned buffer smaller than a value placed in it is an internal error
 * (reported, not overrun).  Sizes are computed with overflow checks; an
 * allocation that fails is reported with the number of bytes asked for.
 *
 * The kernels run in order: the load-time ones (lowering puts them first)
 * fill the constant block, then the others.  rt_exec_run is one whole run;
 * a host that keeps a model loaded (runtime/api.c) computes the constant
 * block once with rt_exec_constants and runs with rt_exec_run_mem in an
 * arena of its own that it keeps across runs (nothing here has state, so
 * any number of threads may run one program at once, each with its arena).
 * Outputs: a new tensor per graph output with the output node's dtype and
 * shape, copied from where its value lives (an output that is an input, a
 * param or a view of one is copied from there; a constant output is filled).
 * Every path frees what it allocated; on failure every outputs[i] is NULL. */
#include "exec.h"

#include <stdlib.h>
#include <string.h>

#include "interp.h"

enum { ALIGN = RT_EXEC_ALIGN };

static bool is_alias_op(OpKind op) { return op == OP_RESHAPE || op == OP_SQUEEZE || op == OP_UNSQUEEZE; }

/* The node whose memory holds n's value (lowering's view rule). */
static const Node *root_of(const Graph *g, const Node *n) {
    for (;;) {
        if (!is_alias_op(n->op) || !n->in[0]) return n;
        if (g->ngroups > 0 &&
            (n->ann.group < 0 || n->ann.group >= g->ngroups || g->groups[n->ann.group]->kind != GK_ALIAS))
            return n;
        n = n->in[0];
    }
}

/* Element count and bytes of n's value at the bound dims. */
static bool value_size(const Graph *g, const Node *n, const int64_t *syms, int64_t *shape, int64_t *numel,
                       size_t *bytes, Diag *d) {
    char err[256];
    int64_t count = 1;
    for (int i = 0; i < n->type.rank; i++) {
        if (!dim_eval(g->dims, n->type.dim[i], syms, &shape[i], err, sizeof err)) {
            diag_error(d, n->loc, "cannot size the value of %s: %s", ir_op_name(n->op), err);
            return false;
        }
        if (shape[i] < 0 || (shape[i] > 0 && count > INT64_MAX / shape[i])) {
            diag_error(d, n->loc, "the value of %s has a negative or too large shape", ir_op_name(n->op));
            return false;
        }
        count *= shape[i];
    }
    size_t b;
    if ((uint64_t)count > SIZE_MAX || __builtin_mul_overflow((size_t)count, (size_t)dtype_size(n->type.dtype), &b)) {
        diag_error(d, n->loc, "the value of %s is too large", ir_op_name(n->op));
        return false;
    }
    *numel = count;
    *bytes = b;
    return true;
}

/* Fills t with the constant n's value (its dtype's rounding). */
static bool fill_const(const Graph *g, const Node *n, const int64_t *syms, Tensor *t, Diag *d) {
    int64_t total = rt_numel(t->rank, t->shape), iv = 0;
    bool isdim = n->dval != DIM_INVALID;
    if (isdim) {
        char err[256];
        if (!dim_eval(g->dims, n->dval, syms, &iv, err, sizeof err)) {
            diag_error(d, n->loc, "const: %s", err);
            return false;
        }
    }
    for (int64_t i = 0; i < total; i++) {
        if (!isdim) {
            rt_set(t, i, n->fval);
            continue;
        }
        unsigned char *p = t->data;
        switch (t->dtype) {
        case DT_I8: p[i] = (unsigned char)(uint8_t)iv; break;
        case DT_I32: {
            uint32_t u = (uint32_t)iv;
            memcpy(p + i * 4, &u, 4);
            break;
        }
        case DT_I64: memcpy(p + i * 8, &iv, 8); break;
        default: rt_set(t, i, (double)iv); break;
        }
    }
    return true;
}

/* *total += v rounded up to ALIGN; false on overflow. */
static bool add_slot(size_t *total, size_t v, size_t *at) {
    if (v > SIZE_MAX - ALIGN || *total > SIZE_MAX - ((v + ALIGN - 1) / ALIGN * ALIGN)) return false;
    *at = *total;
    *total += (v + ALIGN - 1) / ALIGN * ALIGN;
    return true;
}

void rt_exec_layout_free(RtExecLayout *l) {
    if (!l) return;
    free(l->home);
    l->home = NULL;
}

bool rt_exec_layout(const Graph *g, const KProgram *p, const int64_t *syms, RtExecLayout *out, Diag *d) {
    int nn = g->nnodes;
    bool constants_only = !syms;
    *out = (RtExecLayout){.nnodes = nn};
    out->home = calloc((size_t)nn + 1, sizeof *out->home);
    size_t *off = calloc((size_t)g->nbuffers + 1, sizeof *off), *bsize = calloc((size_t)g->nbuffers + 1, sizeof *bsize);
    int64_t *zeros = constants_only ? calloc((size_t)dim_sym_count(g->dims) + 1, sizeof *zeros) : NULL;
    if (constants_only) syms = zeros; /* constant values do not depend on dims */
    bool ok = out->home && off && bsize && syms;
    if (!ok) diag_error(d, g->loc, "out of memory");
    if (ok && p->g && p->g != g) {
        diag_error(d, g->loc, "internal error: the kernel program was lowered from another graph");
        ok = false;
    }

    /* inputs and params: the caller's tensors */
    for (int i = 0, ii = 0, pi = 0; ok && i < nn; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_INPUT && n->op != OP_PARAM) continue;
        int64_t shape[IR_MAX_RANK], numel;
        size_t bytes = 0;
        if (!constants_only && !value_size(g, n, syms, shape, &numel, &bytes, d)) {
            ok = false;
            break;
        }
        out->home[i] = (RtHome){n->op == OP_INPUT ? RT_HOME_INPUT : RT_HOME_PARAM, n->op == OP_INPUT ? ii++ : pi++,
                                0, bytes};
    }

    /* the memory plan's buffers, at the start of the arena */
    size_t total = 0, ctotal = 0;
    for (int b = 0; ok && !constants_only && b < g->nbuffers; b++) {
        int64_t v;
        char err[256];
        if (!dim_eval(g->dims, g->buffers[b].bytes, syms, &v, err, sizeof err)) {
            diag_error(d, g->loc, "cannot size memory-plan buffer %d: %s", b, err);
            ok = false;
        } else if (v < 0 || (uint64_t)v > SIZE_MAX || !add_slot(&total, (size_t)v, &off[b])) {
            diag_error(d, g->loc, "memory-plan buffer %d (%lld bytes) overflows the address space", b, (long long)v);
            ok = false;
        } else {
            bsize[b] = (size_t)v;
        }
    }
    out->nbuffers = ok && !constants_only ? g->nbuffers : 0;

    /* every value a kernel touches */
    for (int ki = 0; ok && ki < p->nkernels; ki++) {
        const Kernel *k = p->kernels[ki];
        for (int b = 0; ok && b < k->nbufs; b++) {
            const Node *n = k->bufs[b].node;
            if (out->home[n->id].kind != RT_HOME_NONE || (constants_only && k->bufs[b].role != KB_CONSTANT) ||
                k->bufs[b].role == KB_DATA)
                continue;
            int64_t shape[IR_MAX_RANK], numel;
            size_t bytes, at;
            if (!value_size(g, n, syms, shape, &numel, &bytes, d)) {
                ok = false;
                break;
            }
            int bid = n->ann.buffer;
            if (k->bufs[b].role == KB_PLANNED && bid >= 0) {
                if (bid >= g->nbuffers || bsize[bid] < bytes) {
                    diag_error(d, n->loc, "internal error: memory-plan buffer %d cannot hold the value of %s (%zu bytes)",
                               bid, ir_op_name(n->op), bytes);
                    ok = false;
                    break;
                }
                out->home[n->id] = (RtHome){RT_HOME_ARENA, -1, off[bid], bsize[bid]};
            } else if (k->bufs[b].role == KB_CONSTANT) {
                if (!add_slot(&ctotal, bytes, &at)) {
                    diag_error(d, n->loc, "the constant values overflow the address space");
                    ok = false;
                    break;
                }
                out->home[n->id] = (RtHome){RT_HOME_CONSTANT, -1, at, bytes};
                out->nconstants++;
            } else {
                if (!add_slot(&total, bytes, &at)) {
                    diag_error(d, n->loc, "the value of %s (%zu bytes) overflows the address space", ir_op_name(n->op),
                               bytes);
                    ok = false;
                    break;
                }
                out->home[n->id] = (RtHome){RT_HOME_ARENA, -1, at, bytes};
                out->nown++;
            }
        }
    }
    out->arena_bytes = total ? total : ALIGN;
    out->constant_bytes = ctotal ? ctotal : ALIGN;
    free(off);
    free(bsize);
    free(zeros);
    return ok;
}

bool rt_exec_output(const Graph *g, const RtExecLayout *l, const int64_t *syms, int i, Tensor **out,
                    const RtHome **from, Diag *d) {
    const Node *o = g->outputs[i].node, *r = root_of(g, o);
    int64_t shape[IR_MAX_RANK], numel;
    size_t bytes;
    *out = NULL;
    *from = NULL;
    if (!value_size(g, o, syms, shape, &numel, &bytes, d)) return false;
    Tensor *t = rt_tensor_new(o->type.dtype, o->type.rank, shape);
    if (!t) {
        diag_error(d, g->outputs[i].loc, "out of memory for output '%s'", g->outputs[i].name);
        return false;
    }
    const RtHome *h = r->id >= 0 && r->id < l->nnodes ? &l->home[r->id] : NULL;
    bool ok = true;
    if (r->op == OP_CONST) {
        ok = fill_const(g, r, syms, t, d);
    } else if ((!h || h->kind == RT_HOME_NONE) && bytes > 0) {
        diag_error(d, g->outputs[i].loc, "internal error: no kernel computes output '%s'", g->outputs[i].name);
        ok = false;
    } else if (h && h->kind != RT_HOME_NONE && bytes > h->bytes) {
        diag_error(d, g->outputs[i].loc, "internal error: output '%s' needs %zu bytes, its memory has %zu",
                   g->outputs[i].name, bytes, h->bytes);
        ok = false;
    } else if (bytes > 0) {
        *from = h;
    }
    if (!ok) {
        rt_tensor_free(t);
        return false;
    }
    *out = t;
    return true;
}

/* The host address of a home. */
static void *host_addr(const RtHome *h, Tensor *const *inputs, Tensor *const *params, unsigned char *arena,
                       unsigned char *constants) {
    switch (h->kind) {
    case RT_HOME_INPUT: return inputs[h->index]->data;
    case RT_HOME_PARAM: return params[h->index]->data;
    case RT_HOME_CONSTANT: return constants + h->offset;
    case RT_HOME_ARENA: return arena + h->offset;
    default: return NULL;
    }
}

/* Runs the kernels of p (the load-time ones when load_time, else the others)
 * with their buffers at host addresses. */
static bool launch_all(const Graph *g, const KProgram *p, const RtExecLayout *L, bool load_time,
                       Tensor *const *inputs, Tensor *const *params, unsigned char *arena,
                       unsigned char *constants, const int64_t *syms, KernelLauncher launch, void *ctx,
                       Diag *d) {
    int errs = diag_error_count(d), maxb = 1;
    for (int ki = 0; ki < p->nkernels; ki++)
        if (p->kernels[ki]->nbufs > maxb) maxb = p->kernels[ki]->nbufs;
    void **bufs = calloc((size_t)maxb, sizeof *bufs);
    if (!bufs) {
        diag_error(d, g->loc, "out of memory");
        return false;
    }
    bool ok = true;
    for (int ki = 0; ok && ki < p->nkernels; ki++) {
        const Kernel *k = p->kernels[ki];
        if (k->load_time != load_time) continue;
        for (int b = 0; b < k->nbufs; b++) {
            if (k->bufs[b].role == KB_DATA) { /* the kernel's own data (a packed sparse weight) */
                bufs[b] = (void *)k->bufs[b].data;
                continue;
            }
            const RtHome *h = &L->home[k->bufs[b].node->id];
            if (load_time && h->kind != RT_HOME_PARAM && h->kind != RT_HOME_CONSTANT) {
                diag_error(d, g->loc,
                           "internal error: load-time kernel %s uses a value that is not a weight or a "
                           "constant",
                           k->name);
                ok = false;
                break;
            }
            bufs[b] = host_addr(h, inputs, params, arena, constants);
        }
        if (ok && !launch(ctx, g, k, bufs, syms, d)) {
            if (diag_error_count(d) == errs) diag_error(d, g->loc, "kernel %s failed", k->name);
            ok = false;
        }
    }
    free(bufs);
    return ok;
}

bool rt_exec_constants(const Graph *g, const KProgram *p, Tensor *const *params, KernelLauncher launch,
                       void *ctx, unsigned char **block, size_t *bytes, Diag *d) {
    *block = NULL;
    *bytes = 0;
    RtExecLayout cl = {0};
    bool ok = rt_check_params(g, params, d) && rt_exec_layout(g, p, NULL, &cl, d);
    unsigned char *constants = ok ? aligned_alloc(ALIGN, cl.constant_bytes) : NULL;
    if (ok && !constants) {
        diag_error(d, g->loc, "out of memory: %zu bytes for %d constant values", cl.constant_bytes,
                   cl.nconstants);
        ok = false;
    }
    if (ok) {
        memset(constants, 0, cl.constant_bytes);
        int64_t *zeros = calloc((size_t)dim_sym_count(g->dims) + 1, sizeof *zeros);
        ok = zeros && launch_all(g, p, &cl, true, NULL, params, NULL, constants, zeros, launch, ctx, d);
        if (!zeros) diag_error(d, g->loc, "out of memory");
        free(zeros);
    }
    if (ok) {
        *block = constants;
        *bytes = cl.constant_bytes;
    } else {
        free(constants);
    }
    rt_exec_layout_free(&cl);
    return ok;
}

bool rt_exec_run_mem(const Graph *g, const KProgram *p, Tensor *const *inputs, int ninputs,
                     Tensor *const *params, const RtExecMem *mem, Tensor **outputs, KernelLauncher launch,
                     void *ctx, Diag *d) {
    int errs = diag_error_count(d), nsym = dim_sym_count(g->dims);
    for (int i = 0; i < g->noutputs; i++)
        outputs[i] = NULL;
    int64_t *syms = calloc((size_t)nsym + 1, sizeof *syms);
    RtExecLayout L = {0};
    unsigned char *arena = NULL, *constants = NULL;
    bool ok = syms != NULL;
    if (!ok) diag_error(d, g->loc, "out of memory");
    ok = ok && rt_bind_dims(g, inputs, ninputs, syms, d) && rt_check_params_bound(g, params, syms, d);

    /* inputs and params: the caller's memory */
    for (int i = 0, ii = 0, pi = 0; ok && i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_INPUT && n->op != OP_PARAM) continue;
        Tensor *t = n->op == OP_INPUT ? inputs[ii++] : params[pi++];
        char why[256];
        if (!rt_tensor_check(t, why, sizeof why)) {
            diag_error(d, n->loc, "%s '%s': %s", n->op == OP_INPUT ? "input" : "weight",
                       n->name ? n->name : "?", why);
            ok = false;
        }
    }

    /* the arena (the caller's, or one for this run) and the constant block */
    ok = ok && rt_exec_layout(g, p, syms, &L, d);
    if (ok && mem && mem->arena) {
        if (mem->arena_bytes < L.arena_bytes) {
            diag_error(d, g->loc, "internal error: the run needs an arena of %zu bytes, it has %zu",
                       L.arena_bytes, mem->arena_bytes);
            ok = false;
        } else {
            arena = mem->arena;
            memset(arena, 0, L.arena_bytes);
        }
    } else if (ok && !(arena = aligned_alloc(ALIGN, L.arena_bytes))) {
        diag_error(d, g->loc,
                   "out of memory: the run needs %zu bytes (%d memory-plan buffers, %d values of their own)",
                   L.arena_bytes, L.nbuffers, L.nown);
        ok = false;
    } else if (ok) {
        memset(arena, 0, L.arena_bytes);
    }
    if (ok && mem && mem->constants) {
        constants = (unsigned char *)mem->constants; /* read only: the load-time kernels do not run */
    } else if (ok && !(constants = aligned_alloc(ALIGN, L.constant_bytes))) {
        diag_error(d, g->loc, "out of memory: %zu bytes for %d constant values", L.constant_bytes,
                   L.nconstants);
        ok = false;
    } else if (ok) {
        memset(constants, 0, L.constant_bytes);
        ok = launch_all(g, p, &L, true, inputs, params, arena, constants, syms, launch, ctx, d);
    }

    /* the kernels */
    ok = ok && launch_all(g, p, &L, false, inputs, params, arena, constants, syms, launch, ctx, d);

    /* the outputs */
    for (int i = 0; ok && i < g->noutputs; i++) {
        const RtHome *from;
        ok = rt_exec_output(g, &L, syms, i, &outputs[i], &from, d);
        if (ok && from)
            memcpy(outputs[i]->data, host_addr(from, inputs, params, arena, constants), outputs[i]->nbytes);
    }
    if (!ok || diag_error_count(d) != errs) {
        ok = false;
        for (int i = 0; i < g->noutputs; i++) {
            rt_tensor_free(outputs[i]);
            outputs[i] = NULL;
        }
    }
    rt_exec_layout_free(&L);
    if (!(mem && mem->arena)) free(arena);
    if (!(mem && mem->constants)) free(constants);
    free(syms);
    return ok;
}

bool rt_exec_run(const Graph *g, const KProgram *p, Tensor *const *inputs, int ninputs, Tensor *const *params,
                 Tensor **outputs, KernelLauncher launch, void *ctx, Diag *d) {
    return rt_exec_run_mem(g, p, inputs, ninputs, params, NULL, outputs, launch, ctx, d);
}
