/* safetensors weights files: a validating reader (mmap'd, zero-copy views) and
 * an atomic writer.
 *
 * Layout (https://huggingface.co/docs/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON
 *     {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...,
 *      "__metadata__": {"key": "value"}}
 * then the data section, which the tensors must cover exactly (no overlaps, no
 * holes, nothing after the last tensor).  Offsets are relative to the start of
 * the data section.
 *
 * The reader checks everything before returning a handle (see docs/formats.md
 * for the full list of rules and the messages); once st_open succeeds, every
 * st_get is a cheap lookup that cannot fail for a name st_name returned.
 * Errors go to the Diag with the file name as location; nothing is printed.
 *
 * Views returned by st_get borrow memory owned by the handle: they stay valid
 * until st_close and are read-only (the file is mapped PROT_READ).  Their data is always aligned to the
 * element size: a tensor that is not naturally aligned inside the file is copied once at open time. Accepted
 * dtypes: F32 F16 BF16 I8 I32 I64 BOOL. */
#ifndef DSC_RUNTIME_SAFETENSORS_H
#define DSC_RUNTIME_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>

#include "../ir/diag.h"
#include "tensor.h"

/* Largest accepted JSON header, in bytes (the limit of the reference reader). */
enum { ST_MAX_HEADER = 100000000 };

typedef struct SafeTensors SafeTensors;

/* Maps `path` read-only and validates it.  NULL (with errors in d) on any
 * problem.  Note: like every mmap reader, a file truncated by someone else
 * while it is open raises SIGBUS on access. */
SafeTensors *st_open(const char *path, Diag *d);
/* The same validation on a buffer; `name` is used in messages.  The buffer is
 * borrowed and must outlive the handle (views may point into it). */
SafeTensors *st_open_mem(const void *buf, size_t len, const char *name, Diag *d);
void st_close(SafeTensors *st);

/* Tensors, in strcmp order of their names. */
int st_count(const SafeTensors *st);
const char *st_name(const SafeTensors *st, int i);
/* Fills *out_view with a non-owning view (owned = false) of the named tensor;
 * false if there is no such tensor.  Never reports to a Diag. */
bool st_get(const SafeTensors *st, const char *name, Tensor *out_view);
/* The same by index (0 <= i < st_count). */
bool st_get_index(const SafeTensors *st, int i, Tensor *out_view);

/* The "__metadata__" map: value for `key` or NULL; keys in strcmp order. */
const char *st_metadata(const SafeTensors *st, const char *key);
int st_metadata_count(const SafeTensors *st);
const char *st_metadata_key(const SafeTensors *st, int i);

/* Writes n tensors and nmeta metadata pairs to `path` via a temporary file in
 * the same directory renamed into place, so a failed write leaves no partial
 * file (and an existing file at `path` untouched).  The JSON header lists the
 * tensors in strcmp order of their names and is padded with spaces to a
 * multiple of 8 bytes; the data section holds the tensors ordered by element
 * size (largest first), then name, so every tensor is naturally aligned and
 * the data section has no holes.  Names must be non-empty, unique and not
 * "__metadata__"; each tensor's nbytes must match its dtype and shape. */
bool st_write(const char *path, int n, const char *const *names, const Tensor *const *tensors, int nmeta,
              const char *const *meta_keys, const char *const *meta_values, Diag *d);

/* The safetensors spelling of a dtype ("F32", "BF16", ...). */
const char *st_dtype_name(DType t);

#endif
