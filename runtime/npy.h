/* numpy .npy files: the run-time tensors given to and written by `dsc run`.
 *
 * Format (numpy.lib.format, versions 1.0, 2.0 and 3.0): the magic "\x93NUMPY",
 * a major and minor version byte, the header length (u16 little-endian in 1.0,
 * u32 in 2.0/3.0), then a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ending in '\n', then the raw C-order data.
 *
 * Accepted descr values (a byte-order character '<', '=' or '|' is accepted,
 * or none; '>' only on one-byte types):
 *     '<f4' f32   '<f2' f16   '<u2' bf16 (raw bfloat16 bits, see below)
 *     '|i1' i8    '<i4' i32   '<i8' i64   '|b1' bool
 * numpy has no bfloat16, so dsc's convention is that a bf16 tensor is stored
 * as '<u2' holding the raw bf16 bit patterns, and every '<u2' file is read as
 * bf16.  Convert in numpy with
 *     f32 = (u2.astype('<u4') << 16).view('<f4')
 * Big-endian data, Fortran order, other dtypes, truncated files and trailing
 * bytes are refused with a message (docs/formats.md lists them all).  Bool
 * bytes other than 0 and 1 are read as 1.
 *
 * The readers never read out of bounds and report every problem to the Diag
 * with the file name as location. */
#ifndef DSC_RUNTIME_NPY_H
#define DSC_RUNTIME_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../ir/diag.h"
#include "tensor.h"

/* Largest accepted header (the dict text), in bytes. */
enum { NPY_MAX_HEADER = 1 << 20 };

/* Reads a whole .npy file into a new owning tensor; NULL with errors in d. */
Tensor *npy_read(const char *path, Diag *d);
/* The same from a buffer holding a whole file; `name` is used in messages. */
Tensor *npy_read_mem(const void *buf, size_t len, const char *name, Diag *d);

/* Writes t as format 1.0 (2.0 only if the header would not fit a u16 length),
 * header padded so the data starts at a multiple of 64 bytes; via a temporary
 * file renamed into place.  bf16 is written as '<u2' (see above). */
bool npy_write(const char *path, const Tensor *t, Diag *d);

/* The descr string dsc writes for a dtype ("<f4", "<u2" for bf16, ...). */
const char *npy_descr(DType t);

#endif
