/* Internal invariants: DSC_ASSERT reports file and line and aborts.  Only for
 * programming errors; user errors go through Diag. */
#ifndef DSC_IR_ASSERT_H
#define DSC_IR_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define DSC_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: internal error: assertion failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define DSC_UNREACHABLE() DSC_ASSERT(!"unreachable")

#endif
