/* The numpy-checked suite: every operator of spec section 5 against numpy.
 *
 * tests/gen_numpy.py writes, for each case, a small .dsg model, its inputs
 * (.npy), its weights (.safetensors) and the outputs numpy computes (.npy)
 * into a directory under the build tree, plus a manifest `cases.txt` with one
 * line `name ninputs noutputs` per case.  This test runs the generator, then
 * compiles each model with the frontend, loads inputs and weights with the
 * runtime readers, runs the reference interpreter and compares.
 *
 * Tolerances (relative L2 error ||got - want|| / ||want||, by output dtype):
 *     f32   1e-5     (numpy's reference rounds to f32 at every op output too)
 *     f16   2e-3     (about four half-precision ulps)
 *     bf16  1.6e-2   (about four bfloat16 ulps)
 *     i8 i32 i64 bool   exact
 * A NaN anywhere in a float output fails the case (the generator never asks
 * for one).  docs/testing.md says the same.
 *
 * Without a python3 that can import numpy the test FAILS (CI installs numpy).
 * Set DSC_NUMPY_FILTER=substring to run only the matching cases, and
 * DSC_NUMPY_VERBOSE=1 to print every float output's error. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/interp.h"
#include "runtime/npy.h"
#include "runtime/safetensors.h"

#define CASE_DIR DSC_BINARY_DIR "/numpy_cases"

static double tolerance(DType t) {
    switch (t) {
    case DT_F32: return 1e-5;
    case DT_F16: return 2e-3;
    case DT_BF16: return 1.6e-2;
    default: return 0;
    }
}

/* Compares one output; on mismatch writes a description into why. */
static bool compare(const Tensor *got, const Tensor *want, char *why, size_t n) {
    char g[128], w[128];
    rt_shape_str(got->dtype, got->rank, got->shape, g, sizeof g);
    rt_shape_str(want->dtype, want->rank, want->shape, w, sizeof w);
    if (strcmp(g, w) != 0) {
        snprintf(why, n, "got %s, expected %s", g, w);
        return false;
    }
    int64_t total = rt_numel(got->rank, got->shape);
    if (!dtype_is_float(got->dtype)) {
        for (int64_t i = 0; i < total; i++)
            if (memcmp((const char *)got->data + i * dtype_size(got->dtype),
                       (const char *)want->data + i * dtype_size(got->dtype),
                       (size_t)dtype_size(got->dtype))) {
                snprintf(why, n, "%s: element %lld is %.17g, expected %.17g (exact)", g, (long long)i,
                         rt_get(got, i), rt_get(want, i));
                return false;
            }
        return true;
    }
    double err = 0, ref = 0, worst = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < total; i++) {
        double a = rt_get(got, i), b = rt_get(want, i);
        if (isnan(a) || isnan(b)) {
            snprintf(why, n, "%s: element %lld is %g, expected %g (NaN)", g, (long long)i, a, b);
            return false;
        }
        err += (a - b) * (a - b);
        ref += b * b;
        if (fabs(a - b) > worst) worst = fabs(a - b), wi = i;
    }
    double rel = ref > 0 ? sqrt(err / ref) : sqrt(err);
    if (getenv("DSC_NUMPY_VERBOSE"))
        fprintf(stderr, "  %s: relative L2 error %.3g (tolerance %.3g)\n", g, rel, tolerance(got->dtype));
    if (!(rel <= tolerance(got->dtype))) {
        snprintf(why, n, "%s: relative L2 error %.3g > %.3g (worst element %lld: %.9g, expected %.9g)", g,
                 rel, tolerance(got->dtype), (long long)wi, rt_get(got, wi), rt_get(want, wi));
        return false;
    }
    return true;
}

/* Runs one case; returns false (after reporting) on any failure. */
static bool run_case(const char *name, int nin, int nout) {
    char dir[1024], path[1200], why[512];
    snprintf(dir, sizeof dir, "%s/%s", CASE_DIR, name);
    Arena *a = arena_create();
    Diag *d = diag_create();
    Tensor **ins = calloc((size_t)nin + 1, sizeof *ins), **outs = calloc((size_t)nout + 1, sizeof *outs);
    Tensor **params = NULL, *views = NULL;
    SafeTensors *st = NULL;
    bool ok = false;
    snprintf(path, sizeof path, "%s/model.dsg", dir);
    Graph *g = fe_compile_file(a, d, path);
    if (!g) goto done;
    int np = 0, gin = 0;
    for (int i = 0; i < g->nnodes; i++)
        np += g->nodes[i]->op == OP_PARAM, gin += g->nodes[i]->op == OP_INPUT;
    if (gin != nin || g->noutputs != nout) {
        diag_error(d, (Loc){0}, "the model has %d inputs and %d outputs, the manifest says %d and %d", gin,
                   g->noutputs, nin, nout);
        goto done;
    }
    params = calloc((size_t)np + 1, sizeof *params);
    views = calloc((size_t)np + 1, sizeof *views);
    if (np) {
        snprintf(path, sizeof path, "%s/%s", dir, g->weights ? g->weights : "(no weights statement)");
        if (!(st = st_open(path, d))) goto done;
        for (int i = 0, k = 0; i < g->nnodes; i++) {
            const Node *n = g->nodes[i];
            if (n->op != OP_PARAM) continue;
            if (st_get(st, n->key, &views[k])) params[k] = &views[k];
            k++;
        }
    }
    for (int i = 0; i < nin; i++) {
        snprintf(path, sizeof path, "%s/input_%d.npy", dir, i);
        if (!(ins[i] = npy_read(path, d))) goto done;
    }
    if (!rt_interp_run(g, ins, nin, params, outs, d)) goto done;
    ok = true;
    for (int i = 0; i < nout; i++) {
        snprintf(path, sizeof path, "%s/expected_%d.npy", dir, i);
        Tensor *want = npy_read(path, d);
        if (!want) {
            ok = false;
            continue;
        }
        if (getenv("DSC_NUMPY_VERBOSE")) fprintf(stderr, "%s/%s:\n", name, g->outputs[i].name);
        if (!compare(outs[i], want, why, sizeof why)) {
            cr_log_error("case %s: output '%s': %s", name, g->outputs[i].name, why);
            ok = false;
        }
        rt_tensor_free(want);
    }
done:
    if (diag_error_count(d)) {
        cr_log_error("case %s failed:", name);
        diag_print(d, stderr, true);
    }
    for (int i = 0; i < nin; i++)
        rt_tensor_free(ins[i]);
    for (int i = 0; i < nout; i++)
        rt_tensor_free(outs[i]);
    free(ins), free(outs), free(params), free(views);
    st_close(st);
    diag_destroy(d);
    arena_destroy(a);
    return ok;
}

Test(numpy, every_operator_against_numpy, .timeout = 600) {
    /* the first python3 that can import numpy; none is a failure, not a skip */
    const char *cmd =
        "rm -rf '" CASE_DIR "' && for py in python3 /usr/bin/python3 /usr/local/bin/python3; do "
        "if \"$py\" -c 'import numpy' >/dev/null 2>&1; then "
        "exec \"$py\" '" DSC_SOURCE_DIR "/tests/gen_numpy.py' '" CASE_DIR "'; fi; done; "
        "echo 'test_numpy: no python3 with numpy found (pip install numpy)' >&2; exit 1";
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "tests/gen_numpy.py failed (exit status %d); numpy is required", rc);
    FILE *f = fopen(CASE_DIR "/cases.txt", "r");
    cr_assert_not_null(f, "no manifest " CASE_DIR "/cases.txt");
    const char *filter = getenv("DSC_NUMPY_FILTER");
    char name[256];
    int nin, nout, ncases = 0, nfail = 0;
    while (fscanf(f, "%255s %d %d", name, &nin, &nout) == 3) {
        if (filter && !strstr(name, filter)) continue;
        ncases++;
        if (!run_case(name, nin, nout)) {
            nfail++;
            cr_expect_fail("case %s failed", name);
        }
    }
    fclose(f);
    cr_log_info("numpy: %d cases, %d failed", ncases, nfail);
    cr_expect_gt(ncases, 0, "no cases ran");
}
