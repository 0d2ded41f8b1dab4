/* Run-time error records of generated kernels (see trap.h). */
#include "trap.h"

#include <inttypes.h>
#include <stdio.h>

void ir_trap_message(const Node *n, KTrapCode code, const int64_t *arg, char *buf, size_t size) {
    switch (code) {
    case KTRAP_DIV_ZERO: snprintf(buf, size, "integer division by zero (%" PRId64 " / 0)", arg[0]); return;
    case KTRAP_POW_ZERO_NEG:
        snprintf(buf, size, "integer 0 raised to the negative power %" PRId64, arg[0]);
        return;
    case KTRAP_GATHER_INDEX: {
        const char *iname = n->nin > 1 && n->in[1] && n->in[1]->name ? n->in[1]->name : NULL;
        int len = snprintf(buf, size, "index %" PRId64 " out of range for axis %" PRId64 " of size %" PRId64,
                           arg[0], arg[1], arg[2]);
        if (iname && len >= 0 && (size_t)len < size)
            snprintf(buf + len, size - (size_t)len, " (tensor '%s')", iname);
        return;
    }
    case KTRAP_EMPTY_MAX: snprintf(buf, size, "reducing over zero elements"); return;
    default: snprintf(buf, size, "unknown run-time error %d", (int)code); return;
    }
}

bool ir_trap_report(const Graph *g, const KTrapRecord *r, Diag *d) {
    if (r->code == KTRAP_NONE) return true;
    if (r->node < 0 || r->node >= g->nnodes || r->code < 0 || r->code >= KTRAP_COUNT) {
        diag_error(d, loc_file(g->file),
                   "a kernel reported run-time error %" PRId64 " at node %" PRId64
                   ", which this model does not have (a backend bug)",
                   r->code, r->node);
        return false;
    }
    const Node *n = g->nodes[r->node];
    char buf[512];
    ir_trap_message(n, (KTrapCode)r->code, r->arg, buf, sizeof buf);
    diag_error(d, n->loc, "%s: %s", ir_op_name(n->op), buf);
    return false;
}
