/* The public C API (include/dsc.h, runtime/api.c).
 *
 * Error paths: NULL arguments to every function, a missing model file, a
 * malformed DSG file, a missing weights file, device cuda without a GPU
 * (DSC_LIBCUDA pointed at nothing, so the result is the same on a machine
 * with one), inputs of the wrong count, dtype, rank, size or shape, a dim past
 * its `<=` bound, inconsistent dims, output buffers of the wrong dtype or too
 * small, an arena that cannot be allocated; handles destroyed in every order.
 * Every error is a status and a message naming the thing, never a crash or a
 * leak (the suite runs under ASan + UBSan in CI).
 *
 * Numerics: every example under examples/ loaded through the API (devices cpu
 * and ref) with weights from a safetensors file written here (seeded random
 * values at the ranges `dsc run --random-weights` uses) and fresh seeded
 * random inputs at two bindings, against the reference interpreter run on
 * the graph as written (no passes) with the same weights: relative L2 error
 * <= 1e-4 (the tolerance of test_host.c for host kernels against the
 * interpreter).
 *
 * Threads: 8 threads, each with its own session on ONE model, several runs
 * each at different bindings, every result equal (bit for bit) to the same
 * inputs run alone on one session.  Memory: the arena grows only when a
 * larger binding arrives (dsc_session_stats). */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsc.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/dsm.h"
#include "runtime/host_jit.h"
#include "runtime/interp.h"
#include "runtime/run.h"
#include "runtime/safetensors.h"

/* The out-of-memory case asks for an impossible arena: the allocator must say
 * so (NULL) rather than abort. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

#define TMP DSC_BINARY_DIR "/test_api_tmp"
#define CACHE DSC_BINARY_DIR "/test_api_cache"

static const char *const examples[] = {"examples/mlp.dsg", "examples/ffn_block.dsg", "examples/cnn_block.dsg",
                                       "examples/bert_layer.dsg", "examples/bert_layer_attention.dsg"};

/* Where the device-neutral tests run: the host JIT, or the interpreter in a
 * build without LLVM (-DDSC_WITH_LLVM=OFF). */
static dsc_device host_device(void) { return rt_host_available() ? DSC_DEVICE_CPU : DSC_DEVICE_REF; }

static dsc_context *new_context(dsc_device dev);

/* Whether the cpu device is built; without it, checks that asking for it is
 * DSC_ERR_NO_DEVICE (what the cpu-only tests check instead). */
static bool cpu_built(void) {
    if (rt_host_available()) return true;
    dsc_context *c = new_context(DSC_DEVICE_CPU);
    dsc_model *m = NULL;
    cr_assert_eq(dsc_model_load(c, "examples/mlp.dsg", &(dsc_model_options){.random_weights = 1}, &m),
                 DSC_ERR_NO_DEVICE);
    cr_assert(strstr(dsc_context_errmsg(c), "the host backend is not built"), "%s", dsc_context_errmsg(c));
    dsc_context_destroy(c);
    return false;
}

static dsc_context *new_context(dsc_device dev) {
    dsc_context_options o = {.device = dev, .cache_dir = CACHE};
    dsc_context *c = NULL;
    cr_assert_eq(dsc_context_create(&o, &c), DSC_OK);
    cr_assert_not_null(c);
    return c;
}

static dsc_model *load_random(dsc_context *c, const char *path, uint64_t seed) {
    dsc_model_options mo = {.random_weights = 1, .seed = seed};
    dsc_model *m = NULL;
    dsc_status st = dsc_model_load(c, path, &mo, &m);
    cr_assert_eq(st, DSC_OK, "%s: %s: %s", path, dsc_status_str(st), dsc_context_errmsg(c));
    return m;
}

/* A context on `dev`, a model of `path` with random weights, a session. */
typedef struct {
    dsc_context *c;
    dsc_model *m;
    dsc_session *s;
} Fixture;

static Fixture open_random(dsc_device dev, const char *path, uint64_t seed) {
    Fixture f = {new_context(dev), NULL, NULL};
    f.m = load_random(f.c, path, seed);
    cr_assert_eq(dsc_session_create(f.m, &f.s), DSC_OK);
    return f;
}

static void close_fixture(Fixture *f) {
    dsc_session_destroy(f->s);
    dsc_model_destroy(f->m);
    dsc_context_destroy(f->c);
}

static void write_file(const char *path, const char *text) {
    mkdir(TMP, 0777);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* A tensor of `dtype` and `shape` with seeded values in [-1, 1) (malloc'd data). */
static dsc_tensor random_tensor(dsc_dtype dtype, int rank, const int64_t *shape, uint64_t *rng) {
    Tensor *t = rt_tensor_new((DType)dtype, rank, shape);
    cr_assert_not_null(t);
    rt_fill_random(t, rng, -1, 1);
    dsc_tensor out = {.dtype = dtype, .rank = rank, .data = t->data, .nbytes = t->nbytes};
    memcpy(out.shape, shape, sizeof(int64_t) * (size_t)rank);
    t->owned = false; /* the data now belongs to `out` */
    rt_tensor_free(t);
    return out;
}

/* The value given to dim `name` ("B", "S", "N"). */
static int64_t dim_value(const char *name, int64_t b, int64_t s) {
    if (strcmp(name, "S") == 0) return s;
    return b; /* B, N */
}

/* Random inputs for every input of m at B (or N) = b, S = s. */
static dsc_tensor *random_inputs(const dsc_model *m, int64_t b, int64_t s, uint64_t seed) {
    int n = dsc_model_input_count(m);
    dsc_tensor *in = calloc((size_t)n + 1, sizeof *in);
    uint64_t rng = seed;
    for (int i = 0; i < n; i++) {
        dsc_tensor_info info;
        cr_assert_eq(dsc_model_input_info(m, i, &info), DSC_OK);
        int64_t shape[DSC_MAX_RANK];
        for (int k = 0; k < info.rank; k++)
            shape[k] = info.shape[k] >= 0 ? info.shape[k] : dim_value(info.dim_names[k], b, s);
        in[i] = random_tensor(info.dtype, info.rank, shape, &rng);
    }
    return in;
}

static void free_tensors(dsc_tensor *t, int n) {
    for (int i = 0; i < n; i++)
        free(t[i].data);
    free(t);
}

static double rel_l2(const Tensor *want, const dsc_tensor *got) {
    int64_t n = rt_numel(want->rank, want->shape);
    Tensor g = {.dtype = (DType)got->dtype, .rank = got->rank, .data = got->data, .nbytes = got->nbytes};
    memcpy(g.shape, got->shape, sizeof g.shape[0] * (size_t)got->rank);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double w = rt_get(want, i), x = rt_get(&g, i);
        num += (w - x) * (w - x);
        den += w * w;
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1);
}

/* ---- statuses and names -------------------------------------------------------------------------------- */

Test(api, status_and_names) {
    for (int s = 0; s < DSC_STATUS_COUNT; s++)
        cr_assert_str_neq(dsc_status_str((dsc_status)s), "unknown status");
    cr_assert_str_eq(dsc_status_str(DSC_STATUS_COUNT), "unknown status");
    cr_assert_str_eq(dsc_status_str(DSC_ERR_SHAPE), "an input's shape does not fit the model");
    cr_assert_str_eq(dsc_dtype_name(DSC_BF16), "bf16");
    cr_assert_eq(dsc_dtype_size(DSC_I64), 8);
    cr_assert_null(dsc_dtype_name(DSC_DTYPE_COUNT));
    cr_assert_eq(dsc_dtype_size(DSC_DTYPE_COUNT), 0);
    cr_assert_str_eq(dsc_device_name(DSC_DEVICE_CUDA), "cuda");
    cr_assert_null(dsc_device_name(DSC_DEVICE_COUNT));
    cr_assert_not_null(strchr(dsc_version(), '.'));
}

/* ---- NULL and out-of-range arguments ------------------------------------------------------------------- */

Test(api, null_arguments) {
    dsc_context *c = (dsc_context *)1;
    cr_assert_eq(dsc_context_create(NULL, NULL), DSC_ERR_INVALID_ARGUMENT);
    dsc_context_options bad = {.device = DSC_DEVICE_COUNT};
    cr_assert_eq(dsc_context_create(&bad, &c), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_null(c);
    cr_assert_eq(dsc_context_create(NULL, &c), DSC_OK); /* the defaults */
    cr_assert_str_eq(dsc_context_errmsg(c), "");
    cr_assert_str_eq(dsc_context_errmsg(NULL), "no context (NULL)");

    dsc_model *m = (dsc_model *)1;
    cr_assert_eq(dsc_model_load(NULL, "examples/mlp.dsg", NULL, &m), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_null(m);
    cr_assert_eq(dsc_model_load(c, NULL, NULL, &m), DSC_ERR_INVALID_ARGUMENT);
    cr_assert(strstr(dsc_context_errmsg(c), "path is NULL"), "%s", dsc_context_errmsg(c));
    cr_assert_eq(dsc_model_load(c, "examples/mlp.dsg", NULL, NULL), DSC_ERR_INVALID_ARGUMENT);
    cr_assert(strstr(dsc_context_errmsg(c), "model is NULL"), "%s", dsc_context_errmsg(c));

    cr_assert_eq(dsc_model_input_count(NULL), -1);
    cr_assert_eq(dsc_model_output_count(NULL), -1);
    cr_assert_eq(dsc_model_dim_count(NULL), -1);
    cr_assert_null(dsc_model_name(NULL));
    dsc_tensor_info info;
    cr_assert_eq(dsc_model_input_info(NULL, 0, &info), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_eq(dsc_model_output_info(NULL, 0, &info), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_eq(dsc_model_dim_info(NULL, 0, NULL, NULL), DSC_ERR_INVALID_ARGUMENT);

    dsc_session *s = (dsc_session *)1;
    cr_assert_eq(dsc_session_create(NULL, &s), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_null(s);
    cr_assert_eq(dsc_session_run(NULL, NULL, 0, NULL, 0), DSC_ERR_INVALID_ARGUMENT);
    dsc_stats st;
    cr_assert_eq(dsc_session_stats(NULL, &st), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_str_eq(dsc_session_errmsg(NULL), "no session (NULL)");

    /* with a model */
    m = load_random(c, "examples/mlp.dsg", 1);
    cr_assert_eq(dsc_session_create(m, NULL), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_eq(dsc_model_input_info(m, 1, &info), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_eq(dsc_model_input_info(m, -1, &info), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_eq(dsc_model_input_info(m, 0, NULL), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_eq(dsc_model_output_info(m, 2, &info), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_eq(dsc_model_dim_info(m, 1, NULL, NULL), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_eq(dsc_session_create(m, &s), DSC_OK);
    cr_assert_eq(dsc_session_stats(s, NULL), DSC_ERR_INVALID_ARGUMENT);
    dsc_tensor outs[2] = {0};
    cr_assert_eq(dsc_session_run(s, NULL, 1, outs, 2), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_str_eq(dsc_session_errmsg(s), "inputs is NULL");
    uint64_t rng = 3;
    dsc_tensor x = random_tensor(DSC_F32, 2, (int64_t[]){2, 784}, &rng);
    cr_assert_eq(dsc_session_run(s, &x, 1, NULL, 2), DSC_ERR_INVALID_ARGUMENT);
    cr_assert_str_eq(dsc_session_errmsg(s), "outputs is NULL");
    cr_assert_eq(dsc_session_run(s, &x, 1, outs, 2), DSC_OK, "%s", dsc_session_errmsg(s));
    cr_assert_str_eq(dsc_session_errmsg(s), "");
    free(x.data);

    dsc_session_destroy(NULL);
    dsc_model_destroy(NULL);
    dsc_context_destroy(NULL);
    dsc_session_destroy(s);
    dsc_model_destroy(m);
    dsc_context_destroy(c);
}

/* ---- loading ------------------------------------------------------------------------------------------- */

Test(api, missing_model_file) {
    dsc_context *c = new_context(host_device());
    dsc_model *m = (dsc_model *)1;
    cr_assert_eq(dsc_model_load(c, "examples/no_such_model.dsg", NULL, &m), DSC_ERR_IO);
    cr_assert_null(m);
    cr_assert_str_eq(dsc_context_errmsg(c),
                     "examples/no_such_model.dsg: cannot open the model: No such file or directory");
    dsc_context_destroy(c);
}

Test(api, malformed_model) {
    write_file(TMP "/bad.dsg", "model bad {\n  input x : f32[4]\n  output y = relu(x,\n}\n");
    write_file(TMP "/badtype.dsg",
               "model badtype {\n  input x : f32[4]\n  output y = matmul(x, x) + nosuch\n}\n");
    dsc_context *c = new_context(host_device());
    dsc_model *m = NULL;
    cr_assert_eq(dsc_model_load(c, TMP "/bad.dsg", NULL, &m), DSC_ERR_DIAGNOSTICS);
    cr_assert_null(m);
    cr_assert(strstr(dsc_context_errmsg(c), TMP "/bad.dsg:4:1: error: "), "%s", dsc_context_errmsg(c));
    cr_assert_eq(dsc_model_load(c, TMP "/badtype.dsg", NULL, &m), DSC_ERR_DIAGNOSTICS);
    cr_assert(strstr(dsc_context_errmsg(c), TMP "/badtype.dsg:3:") && strstr(dsc_context_errmsg(c), "nosuch"),
              "%s", dsc_context_errmsg(c));
    /* a later success clears the message */
    m = load_random(c, "examples/mlp.dsg", 1);
    cr_assert_str_eq(dsc_context_errmsg(c), "");
    dsc_model_destroy(m);
    dsc_context_destroy(c);
}

Test(api, missing_weights) {
    dsc_context *c = new_context(host_device());
    dsc_model *m = NULL;
    /* examples/ carries no weight files: mlp.safetensors is not there */
    cr_assert_eq(dsc_model_load(c, "examples/mlp.dsg", NULL, &m), DSC_ERR_IO);
    cr_assert_str_eq(dsc_context_errmsg(c),
                     "examples/mlp.safetensors: cannot open the weights file: No such file or directory");
    dsc_model_options mo = {.weights = TMP "/none.safetensors"};
    cr_assert_eq(dsc_model_load(c, "examples/mlp.dsg", &mo, &m), DSC_ERR_IO);
    cr_assert(strstr(dsc_context_errmsg(c), "none.safetensors: cannot open the weights file"));
    /* a weights file that lacks a weight: a format error naming it */
    write_file(TMP "/x.dsg",
               "model x {\n  weights \"x.safetensors\"\n  input a : f32[3]\n  param w : f32[3]\n"
               "  output y = a * w\n}\n");
    Tensor *v = rt_tensor_new(DT_F32, 1, (int64_t[]){3});
    Diag *d = diag_create();
    cr_assert(st_write(TMP "/x.safetensors", 1, (const char *[]){"v"}, (const Tensor *const[]){v}, 0, NULL,
                       NULL, d));
    cr_assert_eq(dsc_model_load(c, TMP "/x.dsg", NULL, &m), DSC_ERR_FORMAT);
    cr_assert(strstr(dsc_context_errmsg(c), "missing weight 'w'"), "%s", dsc_context_errmsg(c));
    cr_assert_null(m);
    diag_destroy(d);
    rt_tensor_free(v);
    dsc_context_destroy(c);
}

Test(api, cuda_without_gpu) {
    setenv("DSC_LIBCUDA", TMP "/no-libcuda.so", 1); /* no driver, whatever the machine has */
    dsc_context *c = new_context(DSC_DEVICE_CUDA);
    dsc_model *m = (dsc_model *)1;
    cr_assert_eq(dsc_model_load(c, "examples/mlp.dsg", &(dsc_model_options){.random_weights = 1}, &m),
                 DSC_ERR_NO_DEVICE);
    cr_assert_null(m);
    cr_assert(strstr(dsc_context_errmsg(c), "examples/mlp.dsg: device 'cuda' is not available: "), "%s",
              dsc_context_errmsg(c));
    dsc_context_destroy(c);
    /* auto falls back to the host */
    c = new_context(DSC_DEVICE_AUTO);
    m = load_random(c, "examples/mlp.dsg", 1);
    cr_assert_eq(dsc_model_device(m), host_device());
    dsc_model_destroy(m);
    dsc_context_destroy(c);
}

/* ---- introspection ------------------------------------------------------------------------------------- */

Test(api, introspection) {
    dsc_context *c = new_context(DSC_DEVICE_REF);
    dsc_model *m = load_random(c, "examples/bert_layer.dsg", 1);
    cr_assert_str_eq(dsc_model_name(m), "bert_layer");
    cr_assert_eq(dsc_model_device(m), DSC_DEVICE_REF);
    cr_assert_eq(dsc_model_input_count(m), 2);
    cr_assert_eq(dsc_model_output_count(m), 1);
    dsc_tensor_info x, mask, y;
    cr_assert_eq(dsc_model_input_info(m, 0, &x), DSC_OK);
    cr_assert_eq(dsc_model_input_info(m, 1, &mask), DSC_OK);
    cr_assert_eq(dsc_model_output_info(m, 0, &y), DSC_OK);
    cr_assert_str_eq(x.name, "x");
    cr_assert_eq(x.dtype, DSC_F32);
    cr_assert_eq(x.rank, 3);
    cr_assert(x.shape[0] == -1 && x.shape[1] == -1 && x.shape[2] == 768);
    cr_assert_str_eq(x.dim_names[0], "B");
    cr_assert_str_eq(x.dim_names[1], "S");
    cr_assert_null(x.dim_names[2]);
    cr_assert_str_eq(mask.name, "mask");
    cr_assert(mask.rank == 4 && mask.shape[1] == 1 && mask.shape[2] == 1 && mask.shape[3] == -1);
    cr_assert_str_eq(mask.dim_names[3], "S");
    cr_assert_str_eq(y.name, "y");
    cr_assert(y.rank == 3 && y.shape[2] == 768);
    cr_assert_eq(dsc_model_dim_count(m), 2);
    const char *name;
    int64_t bound;
    cr_assert_eq(dsc_model_dim_info(m, 0, &name, &bound), DSC_OK);
    cr_assert_str_eq(name, "B");
    cr_assert_eq(bound, -1);
    cr_assert_eq(dsc_model_dim_info(m, 1, &name, &bound), DSC_OK);
    cr_assert_str_eq(name, "S");
    cr_assert_eq(bound, 512);
    dsc_model_destroy(m);
    dsc_context_destroy(c);
}

/* ---- bad inputs and outputs ---------------------------------------------------------------------------- */

static void expect_run(dsc_session *s, dsc_tensor *in, int nin, dsc_tensor *out, int nout, dsc_status want,
                       const char *msg) {
    dsc_status st = dsc_session_run(s, in, nin, out, nout);
    cr_assert_eq(st, want, "got %s (%s), want %s", dsc_status_str(st), dsc_session_errmsg(s),
                 dsc_status_str(want));
    cr_assert(strstr(dsc_session_errmsg(s), msg), "message '%s' lacks '%s'", dsc_session_errmsg(s), msg);
}

Test(api, bad_inputs) {
    Fixture f = open_random(host_device(), "examples/bert_layer.dsg", 1);
    dsc_model *bert = f.m;
    dsc_session *s = f.s;
    dsc_tensor *in = random_inputs(bert, 2, 5, 11);
    dsc_tensor out = {0};
    dsc_tensor save = in[0];

    expect_run(s, in, 1, &out, 1, DSC_ERR_INVALID_ARGUMENT, "model 'bert_layer' has 2 inputs, 1 given");
    expect_run(s, in, 3, &out, 1, DSC_ERR_INVALID_ARGUMENT, "model 'bert_layer' has 2 inputs, 3 given");
    expect_run(s, in, 2, &out, 2, DSC_ERR_INVALID_ARGUMENT, "model 'bert_layer' has 1 output, 2 given");
    in[0].dtype = DSC_F16;
    expect_run(s, in, 2, &out, 1, DSC_ERR_INVALID_ARGUMENT,
               "input 0 ('x'): dtype f16, the model declares f32");
    in[0].dtype = (dsc_dtype)99;
    expect_run(s, in, 2, &out, 1, DSC_ERR_INVALID_ARGUMENT, "input 0 ('x'): dtype (invalid)");
    in[0] = save;
    in[0].rank = 2;
    expect_run(s, in, 2, &out, 1, DSC_ERR_INVALID_ARGUMENT,
               "input 0 ('x'): rank 2, the model declares rank 3");
    in[0] = save;
    in[0].nbytes -= 4;
    expect_run(s, in, 2, &out, 1, DSC_ERR_INVALID_ARGUMENT,
               "input 0 ('x'): nbytes is 30716, its shape needs 30720");
    in[0] = save;
    in[0].data = NULL;
    expect_run(s, in, 2, &out, 1, DSC_ERR_INVALID_ARGUMENT, "input 0 ('x'): data is NULL");
    in[0] = save;
    in[0].shape[1] = -5;
    expect_run(s, in, 2, &out, 1, DSC_ERR_SHAPE, "input 0 ('x'): dimension 1 is negative (-5)");
    in[0] = save;
    /* x [2, 5, 768] with mask [2, 1, 1, 5] viewed as [2, 1, 1, 10]... halving the batch keeps the bytes */
    dsc_tensor m2 = in[1];
    m2.shape[0] = 1;
    m2.shape[3] = 10;
    expect_run(s, (dsc_tensor[]){in[0], m2}, 2, &out, 1, DSC_ERR_SHAPE, "");
    cr_assert(strstr(dsc_session_errmsg(s), "'mask'"), "%s", dsc_session_errmsg(s));
    /* a fixed dimension wrong: x [2, 5, 384] */
    uint64_t rng = 5;
    dsc_tensor narrow = random_tensor(DSC_F32, 3, (int64_t[]){2, 5, 384}, &rng);
    expect_run(s, (dsc_tensor[]){narrow, in[1]}, 2, &out, 1, DSC_ERR_SHAPE, "768");
    free(narrow.data);
    /* S = 513 is past `S <= 512` */
    dsc_tensor *big = random_inputs(bert, 1, 513, 12);
    expect_run(s, big, 2, &out, 1, DSC_ERR_SHAPE, "512");
    cr_assert(strstr(dsc_session_errmsg(s), "S"), "%s", dsc_session_errmsg(s));
    free_tensors(big, 2);
    /* nothing broke: the same session runs the good inputs */
    cr_assert_eq(dsc_session_run(s, in, 2, &out, 1), DSC_OK, "%s", dsc_session_errmsg(s));
    cr_assert(out.rank == 3 && out.shape[0] == 2 && out.shape[1] == 5 && out.shape[2] == 768);
    dsc_stats st;
    cr_assert_eq(dsc_session_stats(s, &st), DSC_OK);
    cr_assert_eq(st.runs, 1); /* failed runs do not count */
    free_tensors(in, 2);
    close_fixture(&f);
}

Test(api, output_buffers) {
    Fixture f = open_random(host_device(), "examples/mlp.dsg", 2);
    dsc_model *m = f.m;
    dsc_session *s = f.s;
    dsc_tensor *in = random_inputs(m, 3, 0, 21);
    dsc_tensor own[2] = {0};
    cr_assert_eq(dsc_session_run(s, in, 1, own, 2), DSC_OK, "%s", dsc_session_errmsg(s));
    cr_assert(own[0].rank == 2 && own[0].shape[0] == 3 && own[0].shape[1] == 10 && own[0].nbytes == 120);
    cr_assert_eq(own[0].dtype, DSC_F32);
    float logits[30], probs[30];
    memcpy(logits, own[0].data, sizeof logits);
    memcpy(probs, own[1].data, sizeof probs);

    float small[29], buf[30], buf2[30];
    dsc_tensor out[2] = {{.dtype = DSC_F32, .data = small, .nbytes = sizeof small}, {0}};
    expect_run(s, in, 1, out, 2, DSC_ERR_INVALID_ARGUMENT,
               "output 0 ('logits'): the buffer has 116 bytes, 120 needed");
    cr_assert_eq(out[0].nbytes, 120); /* the size needed */
    out[0] = (dsc_tensor){.dtype = DSC_I32, .data = buf, .nbytes = sizeof buf};
    expect_run(s, in, 1, out, 2, DSC_ERR_INVALID_ARGUMENT,
               "output 0 ('logits'): the buffer is i32, the output is f32");
    out[0] = (dsc_tensor){.dtype = DSC_F32, .data = buf, .nbytes = sizeof buf + 64};
    out[1] = (dsc_tensor){.dtype = DSC_F32, .data = buf2, .nbytes = sizeof buf2};
    cr_assert_eq(dsc_session_run(s, in, 1, out, 2), DSC_OK, "%s", dsc_session_errmsg(s));
    cr_assert(out[0].data == buf && out[0].nbytes == 120 && out[0].rank == 2 && out[0].shape[1] == 10);
    cr_assert_eq(memcmp(buf, logits, sizeof logits), 0);
    cr_assert_eq(memcmp(buf2, probs, sizeof probs), 0);
    free_tensors(in, 1);
    close_fixture(&f);
}

/* ---- lifetimes ----------------------------------------------------------------------------------------- */

Test(api, destroy_in_any_order) {
    for (int order = 0; order < 3; order++) {
        dsc_context *c = new_context(host_device());
        dsc_model *m = load_random(c, "examples/mlp.dsg", 4);
        dsc_session *s;
        cr_assert_eq(dsc_session_create(m, &s), DSC_OK);
        if (order == 0) { /* context, then model: the session still runs */
            dsc_context_destroy(c);
            dsc_model_destroy(m);
        } else if (order == 1) {
            dsc_model_destroy(m);
            dsc_context_destroy(c);
        }
        dsc_tensor *in = random_inputs(m, 2, 0, 7);
        dsc_tensor out[2] = {0};
        cr_assert_eq(dsc_session_run(s, in, 1, out, 2), DSC_OK, "%s", dsc_session_errmsg(s));
        free_tensors(in, 1);
        dsc_session_destroy(s);
        if (order == 2) { /* the usual order */
            dsc_model_destroy(m);
            dsc_context_destroy(c);
        }
    }
}

/* ---- numerics: every example against the interpreter on the graph as written --------------------------- */

/* Loads `path` as written, writes seeded random weights for it to a
 * safetensors file, and returns the graph (in a) and its params. */
static Graph *reference_model(Arena *a, const char *path, const char *weights, RtModelData *md) {
    Diag *d = diag_create();
    Graph *g = fe_compile_file(a, d, path);
    cr_assert_not_null(g, "%s", path);
    /* -O0 runs only sparsify, so params with @sparse load pruned, as the model means them */
    PipelineOptions o0 = {.opt_level = 0};
    cr_assert(pass_run_pipeline(g, d, &o0), "%s", path);
    RunOptions ro = {.params_only = true, .random_weights = true, .seed = 1234};
    cr_assert(rt_model_data_load(g, path, &ro, md, d));
    const char **names = calloc((size_t)md->nparams + 1, sizeof *names);
    for (int i = 0, k = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_PARAM) names[k++] = g->nodes[i]->key;
    mkdir(TMP, 0777);
    cr_assert(st_write(weights, md->nparams, names, (const Tensor *const *)md->params, 0, NULL, NULL, d));
    free(names);
    diag_destroy(d);
    return g;
}

/* Writes the compiled model of `path` with `weights` to `out` (as dsc compile -o does). */
static void write_dsm(const char *path, const char *weights, const char *out) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    Graph *g = fe_compile_file(a, d, path);
    PipelineOptions po = {.opt_level = 2};
    cr_assert(g && pass_run_pipeline(g, d, &po));
    RunOptions ro = {.weights = weights};
    cr_assert(rt_dsm_write(g, path, &ro, out, d), "%s", path);
    diag_destroy(d);
    arena_destroy(a);
}

/* Loads `path` through the API on `dev` (as DSG source, or compiled to a .dsm
 * first) and checks it against the interpreter on the graph as written. */
static void check_example(dsc_device dev, const char *path, bool via_dsm) {
    char weights[512], dsm[512];
    snprintf(weights, sizeof weights, TMP "/%s-%s.safetensors", strrchr(path, '/') + 1, dsc_device_name(dev));
    snprintf(dsm, sizeof dsm, TMP "/%s-%s.dsm", strrchr(path, '/') + 1, dsc_device_name(dev));
    Arena *a = arena_create();
    RtModelData md;
    Graph *g = reference_model(a, path, weights, &md);
    if (via_dsm) write_dsm(path, weights, dsm);
    dsc_context *c = new_context(dev);
    dsc_model *m = NULL;
    dsc_status st = via_dsm ? dsc_model_load(c, dsm, NULL, &m)
                            : dsc_model_load(c, path, &(dsc_model_options){.weights = weights}, &m);
    cr_assert_eq(st, DSC_OK, "%s: %s", path, dsc_context_errmsg(c));
    cr_assert_eq(dsc_model_device(m), dev);
    dsc_session *s;
    cr_assert_eq(dsc_session_create(m, &s), DSC_OK);
    int nin = dsc_model_input_count(m), nout = dsc_model_output_count(m);
    const int64_t bindings[][2] = {{2, 5}, {1, 9}};
    for (int b = 0; b < 2; b++) {
        dsc_tensor *in = random_inputs(m, bindings[b][0], bindings[b][1], 100 + (uint64_t)b);
        dsc_tensor *out = calloc((size_t)nout, sizeof *out);
        st = dsc_session_run(s, in, nin, out, nout);
        cr_assert_eq(st, DSC_OK, "%s: %s", path, dsc_session_errmsg(s));
        Tensor **tin = calloc((size_t)nin, sizeof *tin), **want = calloc((size_t)nout, sizeof *want);
        for (int i = 0; i < nin; i++)
            tin[i] = rt_tensor_wrap((DType)in[i].dtype, in[i].rank, in[i].shape, in[i].data);
        Diag *d = diag_create();
        cr_assert(rt_interp_run(g, tin, nin, md.params, want, d), "%s", path);
        for (int o = 0; o < nout; o++) {
            cr_assert_eq(out[o].rank, want[o]->rank);
            cr_assert_eq(memcmp(out[o].shape, want[o]->shape, sizeof(int64_t) * (size_t)want[o]->rank), 0);
            double err = rel_l2(want[o], &out[o]);
            cr_assert(err <= 1e-4, "%s on %s, output %d, binding %d: rel L2 error %g", path,
                      dsc_device_name(dev), o, b, err);
            rt_tensor_free(want[o]);
        }
        for (int i = 0; i < nin; i++)
            rt_tensor_free(tin[i]);
        diag_destroy(d);
        free(tin);
        free(want);
        free(out);
        free_tensors(in, nin);
    }
    dsc_session_destroy(s);
    dsc_model_destroy(m);
    dsc_context_destroy(c);
    rt_model_data_free(&md);
    arena_destroy(a);
}

Test(api, examples_on_cpu, .timeout = 600) {
    if (!cpu_built()) return;
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++)
        check_example(DSC_DEVICE_CPU, examples[i], false);
}

Test(api, compiled_examples_on_cpu, .timeout = 600) {
    if (!cpu_built()) return;
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++)
        check_example(DSC_DEVICE_CPU, examples[i], true);
}

Test(api, examples_on_ref, .timeout = 600) {
    for (size_t i = 0; i < 2; i++)
        check_example(DSC_DEVICE_REF, examples[i], i == 1); /* the interpreter is slow */
}

/* Damaged compiled models: each a format error naming the file; nothing leaks. */
Test(api, damaged_dsm) {
    mkdir(TMP, 0777);
    Arena *a = arena_create();
    RtModelData md;
    reference_model(a, "examples/mlp.dsg", TMP "/dmg.safetensors", &md);
    write_dsm("examples/mlp.dsg", TMP "/dmg.safetensors", TMP "/good.dsm");
    FILE *f = fopen(TMP "/good.dsm", "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *buf = malloc((size_t)n);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    struct {
        const char *name;
        long len;
        long flip; /* a byte to change, or -1 */
    } cases[] = {{TMP "/truncated.dsm", n / 2, -1},
                 {TMP "/header-only.dsm", 8, -1},
                 {TMP "/flipped-data.dsm", n, n - 100},
                 {TMP "/flipped-header.dsm", n, 40}};
    dsc_context *c = new_context(host_device());
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        f = fopen(cases[i].name, "wb");
        cr_assert_not_null(f);
        if (cases[i].flip >= 0) buf[cases[i].flip] ^= 0x5a;
        fwrite(buf, 1, (size_t)cases[i].len, f);
        if (cases[i].flip >= 0) buf[cases[i].flip] ^= 0x5a;
        fclose(f);
        dsc_model *m = (dsc_model *)1;
        dsc_status st = dsc_model_load(c, cases[i].name, NULL, &m);
        cr_expect_eq(st, DSC_ERR_FORMAT, "%s: %s (%s)", cases[i].name, dsc_status_str(st),
                     dsc_context_errmsg(c));
        cr_expect_null(m);
        cr_expect(strstr(dsc_context_errmsg(c), cases[i].name), "%s: %s", cases[i].name,
                  dsc_context_errmsg(c));
    }
    /* a plain weights file is not a compiled model */
    dsc_model *m = NULL;
    cr_assert_eq(dsc_model_load(c, TMP "/dmg.safetensors", NULL, &m), DSC_ERR_FORMAT);
    cr_assert(strstr(dsc_context_errmsg(c), "dmg.safetensors"), "%s", dsc_context_errmsg(c));
    /* a compiled model carries its weights */
    cr_assert_eq(
        dsc_model_load(c, TMP "/good.dsm", &(dsc_model_options){.weights = TMP "/dmg.safetensors"}, &m),
        DSC_ERR_INVALID_ARGUMENT);
    cr_assert(strstr(dsc_context_errmsg(c), "carries its weights"), "%s", dsc_context_errmsg(c));
    cr_assert_eq(dsc_model_load(c, TMP "/good.dsm", NULL, &m), DSC_OK, "%s", dsc_context_errmsg(c));
    cr_assert_eq(dsc_model_input_count(m), 1);
    dsc_model_destroy(m);
    dsc_context_destroy(c);
    free(buf);
    rt_model_data_free(&md);
    arena_destroy(a);
}

/* ---- many sessions on many threads, one model ---------------------------------------------------------- */

enum { NTHREADS = 8, NRUNS = 4 };

typedef struct {
    dsc_model *m;
    int id;
    dsc_tensor *in[NRUNS];
    float *want[NRUNS]; /* the output of a lone session */
    size_t want_bytes[NRUNS];
    int failures;
    char msg[512];
} Worker;

static int64_t worker_batch(int id, int run) { return 1 + (id + run) % 3; }

static void *work(void *arg) {
    Worker *w = arg;
    dsc_session *s;
    if (dsc_session_create(w->m, &s) != DSC_OK) {
        w->failures++;
        return NULL;
    }
    for (int r = 0; r < NRUNS; r++) {
        dsc_tensor out = {0};
        dsc_status st = dsc_session_run(s, w->in[r], 1, &out, 1);
        if (st != DSC_OK) {
            snprintf(w->msg, sizeof w->msg, "%s", dsc_session_errmsg(s));
            w->failures++;
        } else if (out.nbytes != w->want_bytes[r] || memcmp(out.data, w->want[r], out.nbytes) != 0) {
            snprintf(w->msg, sizeof w->msg, "thread %d run %d: result differs from a lone session", w->id, r);
            w->failures++;
        }
    }
    dsc_session_destroy(s);
    return NULL;
}

Test(api, sessions_on_threads, .timeout = 600) {
    dsc_context_options o = {.device = host_device(), .cache_dir = CACHE, .threads = 2};
    dsc_context *c;
    cr_assert_eq(dsc_context_create(&o, &c), DSC_OK);
    dsc_model *m = load_random(c, "examples/ffn_block.dsg", 9);
    Worker w[NTHREADS] = {0};
    dsc_session *lone;
    cr_assert_eq(dsc_session_create(m, &lone), DSC_OK);
    for (int t = 0; t < NTHREADS; t++) {
        w[t].m = m;
        w[t].id = t;
        for (int r = 0; r < NRUNS; r++) {
            w[t].in[r] = random_inputs(m, worker_batch(t, r), 3 + t, 1000 + (uint64_t)(t * NRUNS + r));
            dsc_tensor out = {0};
            cr_assert_eq(dsc_session_run(lone, w[t].in[r], 1, &out, 1), DSC_OK, "%s",
                         dsc_session_errmsg(lone));
            w[t].want[r] = malloc(out.nbytes);
            memcpy(w[t].want[r], out.data, out.nbytes);
            w[t].want_bytes[r] = out.nbytes;
        }
    }
    dsc_session_destroy(lone);
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, work, &w[t]), 0);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < NTHREADS; t++) {
        cr_expect_eq(w[t].failures, 0, "thread %d: %s", t, w[t].msg);
        for (int r = 0; r < NRUNS; r++) {
            free_tensors(w[t].in[r], 1);
            free(w[t].want[r]);
        }
    }
    dsc_model_destroy(m);
    dsc_context_destroy(c);
}

/* ---- memory -------------------------------------------------------------------------------------------- */

Test(api, arena_grows_only_for_larger_bindings) {
    if (!cpu_built()) return; /* the interpreter has no arena */
    Fixture f = open_random(DSC_DEVICE_CPU, "examples/ffn_block.dsg", 3);
    dsc_model *m = f.m;
    dsc_session *s = f.s;
    dsc_stats st;
    cr_assert_eq(dsc_session_stats(s, &st), DSC_OK);
    cr_assert(st.runs == 0 && st.arena_bytes == 0 && st.arena_grows == 0); /* no arena before the first run */
    const int64_t seq[] = {8, 4, 8, 16, 2, 16};
    const uint64_t grows[] = {1, 1, 1, 2, 2, 2};
    size_t bytes[6];
    for (int i = 0; i < 6; i++) {
        dsc_tensor *in = random_inputs(m, 2, seq[i], (uint64_t)i);
        dsc_tensor out = {0};
        cr_assert_eq(dsc_session_run(s, in, 1, &out, 1), DSC_OK, "%s", dsc_session_errmsg(s));
        free_tensors(in, 1);
        cr_assert_eq(dsc_session_stats(s, &st), DSC_OK);
        cr_assert_eq(st.runs, (uint64_t)i + 1);
        cr_assert_eq(st.arena_grows, grows[i], "run %d (S=%lld): %llu grows", i, (long long)seq[i],
                     (unsigned long long)st.arena_grows);
        cr_assert_eq(st.peak_arena_bytes, st.arena_bytes);
        bytes[i] = st.arena_bytes;
    }
    cr_assert(bytes[0] > 0 && bytes[3] > bytes[0]);
    /* the memory plan at S=8: at least x's size in f32 for the largest value ([2, 8, 3072]) */
    cr_assert_geq(bytes[0], (size_t)2 * 8 * 3072 * 4);
    close_fixture(&f);
}

static void out_of_memory(dsc_device dev, const char *message) {
    /* [N, N] f32 at N = 2^23 is 256 TiB: no allocator gives that */
    write_file(TMP "/outer.dsg", "model outer {\n  dim N\n  input a : f32[N, 1]\n  input b : f32[1, N]\n"
                                 "  output y = relu(a * b)\n}\n");
    dsc_context *c = new_context(dev);
    dsc_model *m = NULL;
    cr_assert_eq(dsc_model_load(c, TMP "/outer.dsg", NULL, &m), DSC_OK, "%s", dsc_context_errmsg(c));
    dsc_session *s;
    cr_assert_eq(dsc_session_create(m, &s), DSC_OK);
    int64_t n = (int64_t)1 << 23;
    float *buf = calloc((size_t)n, sizeof(float));
    cr_assert_not_null(buf);
    dsc_tensor in[2] = {{DSC_F32, 2, {n, 1}, buf, (size_t)n * 4}, {DSC_F32, 2, {1, n}, buf, (size_t)n * 4}};
    dsc_tensor out = {0};
    expect_run(s, in, 2, &out, 1, DSC_ERR_NO_MEMORY, message);
    /* the session survives and runs a small binding */
    in[0].shape[0] = in[1].shape[1] = 3;
    in[0].nbytes = in[1].nbytes = 12;
    buf[0] = 1, buf[1] = -2, buf[2] = 3;
    cr_assert_eq(dsc_session_run(s, in, 2, &out, 1), DSC_OK, "%s", dsc_session_errmsg(s));
    const float *y = out.data;
    const float want[9] = {1, 0, 3, 0, 4, 0, 3, 0, 9};
    for (int i = 0; i < 9; i++)
        cr_assert_eq(y[i], want[i], "y[%d] = %g", i, y[i]);
    free(buf);
    dsc_session_destroy(s);
    dsc_model_destroy(m);
    dsc_context_destroy(c);
}

Test(api, out_of_memory) {
    if (cpu_built()) out_of_memory(DSC_DEVICE_CPU, "outer: out of memory: the run needs an arena of ");
    out_of_memory(DSC_DEVICE_REF, "cannot allocate f32[8388608,8388608]");
}
