/* Pruned params stored block-compressed (BSR) in a compiled model (.dsm).
 *
 * A param with a pruning record (Node.ann.sparse, from @sparse or
 * --sparsity) is zero outside its kept blocks; when the block-compressed
 * form is smaller, the writer (dsm.c) stores it instead of the dense tensor
 * as three tensors -- KEY.bsr.values (the kept blocks, the param's dtype,
 * [nnzb, r, c], edge blocks padded with zeros), KEY.bsr.rowptr (i32,
 * [block rows + 1]) and KEY.bsr.colidx (i32, [nnzb]) -- plus a member of
 * the "dsc.bsr" metadata entry giving the dense dtype, shape and block.
 * The encoding is rt_sparse_to_bsr (runtime/sparse.c).
 *
 * Loading rebuilds the dense tensor, so every run path (dsc run/bench, the
 * C API) sees the params it would see from a dense file.  The file passed
 * its checksum already, but a writer that is not dsc could still produce
 * nonsense, so everything is checked before any byte is copied: the
 * metadata against itself, the three tensors' dtypes and shapes, rowptr
 * starting at 0, never decreasing and ending at nnzb, and colidx in range
 * and strictly increasing within each block row.  Each violation is an error
 * naming the file and the tensor. */
#include "dsm_bsr.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparse.h"

char *rt_dsm_bsr_name(const char *key, const char *part) {
    char *s = NULL;
    return asprintf(&s, "%s.bsr.%s", key, part) < 0 ? NULL : s;
}

bool rt_dsm_bsr_encode(const Tensor *pruned, const IrSparse *s, Tensor *out[3]) {
    out[0] = out[1] = out[2] = NULL;
    if (!s || !s->have_pattern || pruned->rank < 2 ||
        s->lead * s->rows * s->cols != rt_numel(pruned->rank, pruned->shape) ||
        s->rows != pruned->shape[pruned->rank - 2] || s->cols != pruned->shape[pruned->rank - 1] ||
        s->lead * s->nbr + 1 > INT32_MAX || s->kept > INT32_MAX)
        return false;
    size_t bytes = (size_t)(s->lead * s->nbr + 1 + s->kept) * 4 +
                   (size_t)(s->kept * s->br * s->bc) * (size_t)dtype_size(pruned->dtype);
    if (bytes >= pruned->nbytes) return false;
    return rt_sparse_to_bsr(pruned, s, &out[0], &out[1], &out[2]);
}

bool rt_dsm_bsr_has(const SafeTensors *st, const char *key) {
    const char *text = st_metadata(st, RT_DSM_BSR_KEY);
    if (!text) return false;
    cJSON *o = cJSON_Parse(text);
    bool has = cJSON_IsObject(o) && cJSON_GetObjectItemCaseSensitive(o, key);
    cJSON_Delete(o);
    return has;
}

#define ERR(...) diag_error(d, loc_file(file), __VA_ARGS__)

/* An integer JSON number in [lo, hi]. */
static bool json_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double x = v->valuedouble;
    if (x != x || x < (double)lo || x > (double)hi || x != (double)(int64_t)x) return false;
    *out = (int64_t)x;
    return true;
}

/* The dense dtype (its name), shape and block of `key` from the metadata. */
static bool read_meta(const SafeTensors *st, const char *file, const char *key, char dtype[16], int *rank,
                      int64_t shape[IR_MAX_RANK], int64_t block[2], Diag *d) {
    cJSON *o = cJSON_Parse(st_metadata(st, RT_DSM_BSR_KEY));
    const cJSON *e = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"),
                *sh = cJSON_GetObjectItemCaseSensitive(e, "shape"),
                *bl = cJSON_GetObjectItemCaseSensitive(e, "block");
    bool ok = cJSON_IsString(dt) && strlen(dt->valuestring) < 16 && cJSON_IsArray(sh) && cJSON_IsArray(bl) &&
              cJSON_GetArraySize(sh) >= 2 && cJSON_GetArraySize(sh) <= IR_MAX_RANK &&
              cJSON_GetArraySize(bl) == 2;
    if (ok) {
        strcpy(dtype, dt->valuestring);
        *rank = cJSON_GetArraySize(sh);
        for (int i = 0; ok && i < *rank; i++)
            ok = json_int(cJSON_GetArrayItem(sh, i), 0, INT32_MAX, &shape[i]);
        for (int i = 0; ok && i < 2; i++)
            ok = json_int(cJSON_GetArrayItem(bl, i), 1, INT32_MAX, &block[i]);
        int64_t n = 1; /* at most 2^40 elements: no overflow below */
        for (int i = 0; ok && i < *rank; i++) {
            ok = shape[i] == 0 || n <= ((int64_t)1 << 40) / shape[i];
            if (ok) n *= shape[i];
        }
    }
    cJSON_Delete(o);
    if (!ok)
        ERR("metadata '" RT_DSM_BSR_KEY "': the entry of '%s' is not {\"dtype\": NAME, \"shape\": [rank >= 2 "
            "dims], \"block\": [r, c]} (at most 2^40 elements)",
            key);
    return ok;
}

/* Tensor `part` of `key`: its view and index; false after an error. */
static bool get_part(const SafeTensors *st, const char *file, const char *key, const char *part, Tensor *t,
                     int *index, Diag *d) {
    char *name = rt_dsm_bsr_name(key, part);
    bool found = false;
    for (int i = 0; name && i < st_count(st) && !found; i++)
        if (strcmp(st_name(st, i), name) == 0) {
            st_get_index(st, i, t);
            *index = i;
            found = true;
        }
    if (!found) ERR("sparse param '%s': missing tensor '%s.bsr.%s'", key, key, part);
    free(name);
    return found;
}

/* t is `dtype` [n] (rank 1) or, with block, [n, block[0], block[1]]. */
static bool check_shape(const Tensor *t, const char *file, const char *key, const char *part,
                        const char *dtype, int64_t n, const int64_t *block, Diag *d) {
    int64_t want[3] = {n, block ? block[0] : 0, block ? block[1] : 0};
    int rank = block ? 3 : 1;
    bool same = strcmp(st_dtype_name(t->dtype), dtype) == 0 && t->rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = t->shape[i] == want[i];
    if (!same) {
        char got[256], exp[256];
        rt_shape_str(t->dtype, t->rank, t->shape, got, sizeof got);
        snprintf(exp, sizeof exp, "%s[%lld%s", dtype, (long long)n, block ? "" : "]");
        if (block)
            snprintf(exp + strlen(exp), sizeof exp - strlen(exp), ", %lld, %lld]", (long long)block[0],
                     (long long)block[1]);
        ERR("sparse param '%s': tensor '%s.bsr.%s' is %s, expected %s (size mismatch with the metadata "
            "and the other BSR tensors)",
            key, key, part, got, exp);
    }
    return same;
}

Tensor *rt_dsm_bsr_decode(const SafeTensors *st, const char *file, const char *key, int used[3], Diag *d) {
    char dtype[16];
    int rank, idx[3];
    int64_t shape[IR_MAX_RANK], block[2];
    Tensor rp, ci, va;
    if (!read_meta(st, file, key, dtype, &rank, shape, block, d)) return NULL;
    if (!get_part(st, file, key, "rowptr", &rp, &idx[0], d) ||
        !get_part(st, file, key, "colidx", &ci, &idx[1], d) ||
        !get_part(st, file, key, "values", &va, &idx[2], d))
        return NULL;
    int64_t lead = 1, rows = shape[rank - 2], cols = shape[rank - 1];
    for (int i = 0; i < rank - 2; i++)
        lead *= shape[i];
    int64_t nbr = (rows + block[0] - 1) / block[0], nbc = (cols + block[1] - 1) / block[1], nrow = lead * nbr;
    if (nrow + 1 > INT32_MAX) {
        ERR("metadata '" RT_DSM_BSR_KEY "': sparse param '%s' has too many block rows (%lld)", key,
            (long long)nrow);
        return NULL;
    }
    int64_t nnzb = ci.rank == 1 ? ci.shape[0] : -1;
    if (!check_shape(&rp, file, key, "rowptr", "I32", nrow + 1, NULL, d) ||
        !check_shape(&ci, file, key, "colidx", "I32", nnzb, NULL, d) ||
        !check_shape(&va, file, key, "values", dtype, nnzb, block, d))
        return NULL;
    /* copies: the file's tensors need not be 4-byte aligned */
    int32_t *rpp = malloc(rp.nbytes + 4), *cip = malloc(ci.nbytes + 4);
    Tensor *t = rpp && cip ? rt_tensor_new(va.dtype, rank, shape) : NULL;
    if (!t) {
        ERR("out of memory");
        goto fail;
    }
    memcpy(rpp, rp.data, rp.nbytes);
    memcpy(cip, ci.data, ci.nbytes);
    if (rpp[0] != 0 || rpp[nrow] != nnzb) {
        ERR("sparse param '%s': tensor '%s.bsr.rowptr' must run from 0 to %lld (the number of blocks), not "
            "from %d to %d",
            key, key, (long long)nnzb, rpp[0], rpp[nrow]);
        goto fail;
    }
    for (int64_t r = 0; r < nrow; r++)
        if (rpp[r + 1] < rpp[r]) {
            ERR("sparse param '%s': tensor '%s.bsr.rowptr' is not monotone (element %lld is %d, element %lld "
                "is %d)",
                key, key, (long long)r, rpp[r], (long long)r + 1, rpp[r + 1]);
            goto fail;
        }
    for (int64_t r = 0; r < nrow; r++) /* rowptr is monotone from 0 to nnzb: in bounds */
        for (int32_t k = rpp[r]; k < rpp[r + 1]; k++) {
            if (cip[k] < 0 || cip[k] >= nbc) {
                ERR("sparse param '%s': tensor '%s.bsr.colidx' element %d is %d, out of range [0, %lld)", key,
                    key, k, cip[k], (long long)nbc);
                goto fail;
            }
            if (k > rpp[r] && cip[k] <= cip[k - 1]) {
                ERR("sparse param '%s': tensor '%s.bsr.colidx' is not strictly increasing in block row %lld "
                    "(element %d is %d after %d)",
                    key, key, (long long)r, k, cip[k], cip[k - 1]);
                goto fail;
            }
        }
    size_t es = (size_t)dtype_size(va.dtype);
    const unsigned char *src = va.data;
    unsigned char *dst = t->data;
    for (int64_t r = 0; r < nrow; r++) {
        int64_t l = r / nbr, i0 = r % nbr * block[0];
        for (int32_t k = rpp[r]; k < rpp[r + 1]; k++) {
            int64_t j0 = cip[k] * block[1], w = cols - j0 < block[1] ? cols - j0 : block[1];
            for (int64_t y = 0; y < block[0] && i0 + y < rows; y++)
                memcpy(dst + (size_t)((l * rows + i0 + y) * cols + j0) * es,
                       src + (size_t)((k * block[0] + y) * block[1]) * es, (size_t)w * es);
        }
    }
    if (used) memcpy(used, idx, sizeof idx);
    free(rpp);
    free(cip);
    return t;
fail:
    free(rpp);
    free(cip);
    rt_tensor_free(t);
    return NULL;
}

int rt_dsm_bsr_infos(const SafeTensors *st, RtDsmBsrInfo **out) {
    *out = NULL;
    const char *text = st_metadata(st, RT_DSM_BSR_KEY);
    if (!text) return 0;
    cJSON *o = cJSON_Parse(text);
    int n = cJSON_GetArraySize(o), count = 0;
    RtDsmBsrInfo *infos = calloc((size_t)n + 1, sizeof *infos);
    Diag *quiet = diag_create(); /* the file passed rt_dsm_open: nothing to report */
    bool ok = o && infos && quiet;
    for (const cJSON *e = o ? o->child : NULL; ok && e; e = e->next) {
        RtDsmBsrInfo *in = &infos[count];
        char dtype[16];
        int rank, idx[3];
        int64_t shape[IR_MAX_RANK], block[2];
        if (!(in->key = strdup(e->string))) {
            ok = false;
            break;
        }
        count++;
        if (!read_meta(st, "", in->key, dtype, &rank, shape, block, quiet)) continue;
        Tensor parts[3];
        static const char *const names[3] = {"rowptr", "colidx", "values"};
        bool have = true;
        for (int k = 0; have && k < 3; k++) {
            have = get_part(st, "", in->key, names[k], &parts[k], &idx[k], quiet);
            in->stored_bytes += have ? (double)parts[k].nbytes : 0;
        }
        if (!have) continue;
        int64_t lead = 1;
        for (int i = 0; i < rank - 2; i++)
            lead *= shape[i];
        in->br = block[0];
        in->bc = block[1];
        in->blocks = lead * ((shape[rank - 2] + block[0] - 1) / block[0]) *
                     ((shape[rank - 1] + block[1] - 1) / block[1]);
        in->kept = parts[1].shape[0];
        in->dense_bytes = (double)rt_numel(rank, shape) * dtype_size(parts[2].dtype);
    }
    cJSON_Delete(o);
    diag_destroy(quiet);
    if (!ok) {
        rt_dsm_bsr_infos_free(infos, count);
        return -1;
    }
    *out = infos;
    return count;
}

void rt_dsm_bsr_infos_free(RtDsmBsrInfo *infos, int n) {
    for (int i = 0; infos && i < n; i++)
        free(infos[i].key);
    free(infos);
}
