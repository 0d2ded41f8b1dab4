/* Run-time errors of generated kernels: the trap record.
 *
 * The reference interpreter (runtime/interp.c) reports an error when a value
 * cannot be computed: an integer division by zero, integer 0 raised to a
 * negative power, a gather index out of range, a maximum of nothing.  A
 * kernel cannot report, so lowering (codegen/lower.c) emits a KS_TRAP
 * statement under a guard at each such point, and every backend gives the
 * kernel a pointer to one KTrapRecord per run: the first point that traps
 * writes its code, its node and up to three operand values (the code by a
 * compare-and-swap from 0, so that one point wins when many run in
 * parallel), the point goes on with a harmless value, and the launcher turns
 * a non-zero record into the interpreter's diagnostic (ir_trap_report) and
 * fails the run.  The interpreter formats its own messages with
 * ir_trap_message too, so the texts cannot drift.
 *
 * The record is five i64 in this order; the LLVM and CUDA renderers index it
 * by these offsets. */
#ifndef DSC_IR_TRAP_H
#define DSC_IR_TRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "ir.h"

typedef enum {
    KTRAP_NONE,         /* nothing went wrong (the record is all zeros) */
    KTRAP_DIV_ZERO,     /* integer div: arg[0] is the dividend */
    KTRAP_POW_ZERO_NEG, /* integer pow of 0: arg[0] is the (negative) exponent */
    KTRAP_GATHER_INDEX, /* gather: arg[0] the index, arg[1] the axis, arg[2] its size */
    KTRAP_EMPTY_MAX,    /* reduce_max over zero elements (no operands) */
    KTRAP_COUNT
} KTrapCode;

enum { KTRAP_NARGS = 3 };

typedef struct {
    int64_t code; /* a KTrapCode; 0 until something traps */
    int64_t node; /* the node id (Graph.nodes) */
    int64_t arg[KTRAP_NARGS];
} KTrapRecord;

/* The message for a trap at node n, without the operator prefix (the caller
 * reports "<op>: <message>" at n->loc, as the interpreter does). */
void ir_trap_message(const Node *n, KTrapCode code, const int64_t *arg, char *buf, size_t size);

/* Reports a non-zero record as the interpreter would and returns false;
 * true (nothing reported) for an all-zero record.  A record that names no
 * node of g or an unknown code is reported as such (a backend bug). */
bool ir_trap_report(const Graph *g, const KTrapRecord *r, Diag *d);

#endif
