/* Pruned params stored block-compressed (BSR) in a compiled model (.dsm):
 * the encoding the writer uses and the checking decoder the loaders use
 * (docs/formats.md, ".dsm", "Block-compressed params"). */
#ifndef DSC_RUNTIME_DSM_BSR_H
#define DSC_RUNTIME_DSM_BSR_H

#include <stdbool.h>

#include "../ir/diag.h"
#include "../ir/ir.h"
#include "../ir/sparse.h"
#include "safetensors.h"
#include "tensor.h"

/* The metadata entry: a JSON object, one member per BSR param key. */
#define RT_DSM_BSR_KEY "dsc.bsr"

/* The three tensor names of param key `key` (`part`: "values", "rowptr" or
 * "colidx"), malloc'd (NULL: out of memory). */
char *rt_dsm_bsr_name(const char *key, const char *part);

/* The BSR tensors of `pruned` (a param with a pruning pattern, s) when they
 * take fewer bytes than the dense tensor: true and three new tensors
 * (rowptr, colidx, values) the caller frees; false (nothing allocated)
 * when dense is smaller, s has no pattern that fits the tensor, or memory
 * runs out. */
bool rt_dsm_bsr_encode(const Tensor *pruned, const IrSparse *s, Tensor *out[3]);

/* Whether the file stores param key `key` block-compressed (a member of the
 * "dsc.bsr" metadata entry). */
bool rt_dsm_bsr_has(const SafeTensors *st, const char *key);

/* Checks the BSR tensors of `key` completely (metadata, the three tensors'
 * dtypes and shapes, rowptr monotone from 0 to the block count, colidx in
 * range and strictly increasing per block row) and rebuilds the dense
 * tensor (owned; NULL after an error naming `file` and the tensor).  `used`
 * (may be NULL) gets the indices of the three tensors (st_name order). */
Tensor *rt_dsm_bsr_decode(const SafeTensors *st, const char *file, const char *key, int used[3], Diag *d);

/* One block-compressed param of a checked file, for `dsc inspect`. */
typedef struct {
    char *key; /* malloc'd */
    int64_t br, bc;
    int64_t blocks, kept;             /* blocks of the dense tensor, blocks stored */
    double dense_bytes, stored_bytes; /* the dense tensor, the three BSR tensors */
} RtDsmBsrInfo;

/* The block-compressed params of a file rt_dsm_open accepted, in key order,
 * into *out (free with rt_dsm_bsr_infos_free); the count, -1 if memory runs
 * out. */
int rt_dsm_bsr_infos(const SafeTensors *st, RtDsmBsrInfo **out);
void rt_dsm_bsr_infos_free(RtDsmBsrInfo *infos, int n);

#endif
