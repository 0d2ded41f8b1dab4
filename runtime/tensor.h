/* Run-time tensors: a dtype, a concrete shape and a contiguous C-order buffer.
 *
 * Used by the weights and .npy readers, the reference interpreter and the
 * executors.  A tensor either owns its buffer (malloc'd) or borrows it (for
 * example from an mmap'd weights file, kept alive by whoever mapped it). */
#ifndef DSC_RUNTIME_TENSOR_H
#define DSC_RUNTIME_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../ir/ir.h"

typedef struct Tensor {
    DType dtype;
    int rank;
    int64_t shape[IR_MAX_RANK];
    void *data;
    size_t nbytes;
    bool owned; /* data is malloc'd and freed with the tensor */
} Tensor;

/* A new zeroed tensor owning its buffer; NULL if the size overflows or memory
 * runs out. */
Tensor *rt_tensor_new(DType dtype, int rank, const int64_t *shape);
/* A tensor borrowing `data` (nbytes must match dtype and shape). */
Tensor *rt_tensor_wrap(DType dtype, int rank, const int64_t *shape, void *data);
void rt_tensor_free(Tensor *t);
/* Number of elements, or -1 on overflow. */
int64_t rt_numel(int rank, const int64_t *shape);
/* "f32[2,3]" into buf. */
void rt_shape_str(DType dtype, int rank, const int64_t *shape, char *buf, size_t n);

/* Checks that t is well formed for writing: valid dtype and rank, no
 * negative dims, nbytes equal to dtype size times element count, data present.
 * On failure writes the reason into why (e.g. "nbytes is 8 but f32[3] needs
 * 12") and returns false. */
bool rt_tensor_check(const Tensor *t, char *why, size_t n);
/* Writes t's data to f, bool bytes normalised to 0/1.  False on I/O error. */
bool rt_tensor_fwrite(FILE *f, const Tensor *t);

/* Element access as double / store from double (with rounding to the dtype:
 * f16/bf16 round to nearest even, integers convert like C casts from a value
 * already rounded by the caller, bool is value != 0). */
double rt_get(const Tensor *t, int64_t i);
void rt_set(Tensor *t, int64_t i, double v);

/* The half and bfloat16 conversions are ir_f16_to_f32 and friends (ir/ir.h). */

#endif
