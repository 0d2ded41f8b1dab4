/* libFuzzer target for the compiled-model loader (runtime/dsm.c).
 *
 * Each input is tried twice:
 *   1. as it is, with rt_dsm_open_mem: accepted or refused with an error,
 *      never a crash, a leak or a half-filled RtDsm;
 *   2. re-sealed: when the input is a well-formed safetensors container, its
 *      metadata and tensors are written to a file again with the checksum
 *      replaced by the right one (rt_dsm_checksum), and that file is opened
 *      with rt_dsm_open.  A fuzzer cannot forge SHA-256, so without this step
 *      every mutation would stop at "checksum mismatch"; with it, mutations of
 *      the graph text, the plan, versions and tensors reach the checks behind
 *      the checksum (the graph compiling, params against tensors).
 * An accepted model must be consistent: a verified graph, its weights naming
 * the file, and a tensor of the right size for every param.
 * Seed corpus: tests/data/corrupt_dsm. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/dsm.h"
#include "runtime/dsm_bsr.h"
#include "runtime/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_loaded(bool ok, const RtDsm *m, const Diag *d) {
    if (!ok) {
        if (diag_error_count(d) == 0 || m->graph || m->file || m->model) abort();
        return;
    }
    if (diag_error_count(d) != 0 || !m->graph || !m->file || !m->graph->weights) abort();
    Diag *v = diag_create();
    if (!ir_verify(m->graph, v)) abort();
    diag_destroy(v);
    for (int i = 0; i < m->graph->nnodes; i++) {
        const Node *p = m->graph->nodes[i];
        Tensor t;
        if (p->op != OP_PARAM) continue;
        Tensor *dense = NULL; /* a param stored block-compressed is rebuilt (runtime/dsm_bsr.h) */
        if (!st_get(m->file, p->key, &t)) {
            Diag *q = diag_create();
            if (!rt_dsm_bsr_has(m->file, p->key) ||
                !(dense = rt_dsm_bsr_decode(m->file, "fuzz.dsm", p->key, NULL, q)))
                abort();
            diag_destroy(q);
            t = *dense;
        }
        if (t.dtype != p->type.dtype || t.rank != p->type.rank) abort();
        rt_tensor_free(dense);
    }
}

static void try_open_mem(const uint8_t *data, size_t size) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    RtDsm m = {.model = "not zeroed"};
    bool ok = rt_dsm_open_mem(data, size, "fuzz.dsm", a, &m, d);
    check_loaded(ok, &m, d);
    rt_dsm_close(&m);
    diag_destroy(d);
    arena_destroy(a);
}

static void try_resealed(const uint8_t *data, size_t size) {
    Diag *d = diag_create();
    SafeTensors *st = st_open_mem(data, size, "fuzz.safetensors", d);
    if (!st) {
        diag_destroy(d);
        return;
    }
    int n = st_count(st), nm = st_metadata_count(st);
    const char **names = calloc((size_t)n + 1, sizeof *names), **keys = calloc((size_t)nm + 2, sizeof *keys),
               **values = calloc((size_t)nm + 2, sizeof *values);
    Tensor *views = calloc((size_t)n + 1, sizeof *views);
    const Tensor **tensors = calloc((size_t)n + 1, sizeof *tensors);
    char sum[RT_DSM_CHECKSUM_SIZE];
    rt_dsm_checksum(st, sum);
    int k = 0;
    for (int i = 0; i < nm; i++) {
        keys[k] = st_metadata_key(st, i);
        if (strcmp(keys[k], "dsc.checksum") == 0) continue;
        values[k] = st_metadata(st, keys[k]);
        k++;
    }
    keys[k] = "dsc.checksum";
    values[k++] = sum;
    for (int i = 0; i < n; i++) {
        names[i] = st_name(st, i);
        st_get_index(st, i, &views[i]);
        tensors[i] = &views[i];
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_dsm_%d.dsm", (int)getpid());
    if (st_write(path, n, names, tensors, k, keys, values, d)) {
        Arena *a = arena_create();
        Diag *d2 = diag_create();
        RtDsm m = {.model = "not zeroed"};
        bool ok = rt_dsm_open(path, a, &m, d2);
        check_loaded(ok, &m, d2);
        rt_dsm_close(&m);
        diag_destroy(d2);
        arena_destroy(a);
        unlink(path);
    }
    st_close(st);
    free(names);
    free(keys);
    free(values);
    free(views);
    free(tensors);
    diag_destroy(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try_open_mem(data, size);
    try_resealed(data, size);
    return 0;
}
