/* Tests of the compiled-model file (runtime/dsm.c).
 *
 *   - round trip: tests/data/dsm_tiny.dsg (a param read twice under one key,
 *     a dead param, a batchnorm, i32 and bool params, a load-time constant
 *     computed at load and one stored folded) through the pipeline
 *     and rt_dsm_write with seeded random weights; the loaded graph prints as
 *     the stored text, holds exactly the params the optimized graph uses, and
 *     the reference interpreter gives bit-identical outputs on the original
 *     and on the loaded model (whose weights come from the .dsm itself);
 *   - refusals: every file of tests/data/corrupt_dsm fails with the phrase its
 *     MANIFEST.tsv lists, every message naming the file; every proper prefix
 *     of a fresh .dsm and every single-bit flip (bits 0 and 7 of every byte)
 *     fails with an error;
 *   - failed writes leave nothing behind (and an existing file untouched). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/dsm.h"
#include "runtime/safetensors.h"

#define SRC DSC_SOURCE_DIR "/tests/data"
#define MODEL SRC "/dsm_tiny.dsg"
#define TMP DSC_BINARY_DIR "/test_dsm_tmp"

static void make_tmp(void) {
    if (mkdir(TMP, 0777) != 0 && errno != EEXIST) cr_assert_fail("mkdir %s: %s", TMP, strerror(errno));
}

static Graph *compile_model(Arena *a, Diag *d, bool optimize) {
    Graph *g = fe_compile_file(a, d, MODEL);
    cr_assert(g, "%s does not compile", MODEL);
    PipelineOptions po = {.opt_level = 2};
    if (optimize) cr_assert(pass_run_pipeline(g, d, &po));
    return g;
}

/* Writes TMP/name from the tiny model with random weights (seed). */
static void write_tiny(const char *path, uint64_t seed) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    Graph *g = compile_model(a, d, true);
    RunOptions ro = {.random_weights = true, .seed = seed, .as_written = compile_model(a, d, false)};
    bool ok = rt_dsm_write(g, MODEL, &ro, path, d);
    char *msg = test_diag_text(d, false);
    cr_assert(ok, "rt_dsm_write failed: %s", msg);
    free(msg);
    diag_destroy(d);
    arena_destroy(a);
}

static bool messages_contain(const Diag *d, const char *phrase) {
    char *text = test_diag_text(d, false);
    bool found = text && strcasestr(text, phrase);
    free(text);
    return found;
}

/* Every message is located in `name` (or in its graph text, name(dsc.graph)). */
static void expect_located(const Diag *d, const char *name) {
    for (int i = 0; i < diag_count(d); i++) {
        Loc loc;
        DiagLevel lv;
        const char *msg = diag_message(d, i, &lv, &loc);
        cr_expect(loc.file && strncmp(loc.file, name, strlen(name)) == 0, "message not located in %s: %s: %s",
                  name, loc.file ? loc.file : "(none)", msg);
    }
}

Test(dsm, round_trip_runs_the_same) {
    make_tmp();
    const char *path = TMP "/tiny.dsm";
    write_tiny(path, 5);
    cr_expect(rt_dsm_is(path));

    Arena *a = arena_create();
    Diag *d = diag_create();
    RtDsm m;
    bool ok = rt_dsm_open(path, a, &m, d);
    char *msg = test_diag_text(d, true);
    cr_assert(ok, "rt_dsm_open: %s", msg);
    free(msg);
    cr_expect_eq(m.format_version, RT_DSM_FORMAT_VERSION);
    cr_expect_str_eq(m.model, "tiny");
    cr_expect_str_eq(m.graph->weights, "tiny.dsm");
    cr_expect(strncmp(m.checksum, "sha256:", 7) == 0 && strlen(m.checksum) == 71);
    cr_expect(strstr(m.kernel_ir, "tiny_g1_0"), "kernel IR: %s", m.kernel_ir);
    cr_expect(strstr(m.plan_json, "\"kind\":\"constant\""), "plan: %s", m.plan_json);

    /* The graph prints as stored (the stored text has no weights line). */
    const char *w = m.graph->weights;
    m.graph->weights = NULL;
    char *printed = test_print_dsg(m.graph);
    m.graph->weights = w;
    cr_expect_str_eq(printed, m.graph_text);
    free(printed);
    cr_expect(m.graph->ngroups == 2 && m.graph->nbuffers == 1, "plan lost: %d groups, %d buffers",
              m.graph->ngroups, m.graph->nbuffers);

    /* Tensors: one per key the optimized graph reads; 'dead' dropped, 'w'
     * once; abs(b) folded (exact), cast(offsets) * exp(bn.bias) not. */
    cr_expect(strstr(m.graph_text, "param b.folded0 : f32[6]\n"), "graph: %s", m.graph_text);
    cr_expect(strstr(m.graph_text, "exp(bn.bias)") && !strstr(m.graph_text, "abs("), "graph: %s",
              m.graph_text);
    const char *want[] = {"b",      "b.folded0", "bn.bias", "bn.mean", "bn.scale",
                          "bn.var", "keep",      "offsets", "w"};
    cr_assert_eq(st_count(m.file), 9);
    for (int i = 0; i < 9; i++)
        cr_expect_str_eq(st_name(m.file, i), want[i]);

    /* Same outputs, bit for bit, from the original with its random weights
     * and from the .dsm with the weights it holds. */
    Graph *orig = compile_model(a, d, true);
    RunOptions ro = {
        .random_inputs = true, .random_weights = true, .seed = 5, .as_written = compile_model(a, d, false)};
    Tensor *want_out[1] = {0}, *got_out[1] = {0};
    cr_assert(rt_run_model(orig, MODEL, &ro, want_out, d));
    RunOptions lo = {.random_inputs = true, .seed = 5};
    ok = rt_run_model(m.graph, path, &lo, got_out, d);
    msg = test_diag_text(d, true);
    cr_assert(ok, "run of the .dsm: %s", msg);
    free(msg);
    cr_assert_eq(want_out[0]->nbytes, got_out[0]->nbytes);
    cr_expect(memcmp(want_out[0]->data, got_out[0]->data, want_out[0]->nbytes) == 0, "outputs differ");
    double sum = 0;
    for (int64_t i = 0; i < rt_numel(got_out[0]->rank, got_out[0]->shape); i++)
        sum += rt_get(got_out[0], i) != 0;
    cr_expect(sum > 0, "degenerate output (all zeros)");
    rt_tensor_free(want_out[0]);
    rt_tensor_free(got_out[0]);
    rt_dsm_close(&m);
    rt_dsm_close(&m); /* zeroed: safe */
    diag_destroy(d);
    arena_destroy(a);
}

Test(dsm, detection_by_content) {
    make_tmp();
    cr_expect(rt_dsm_is(SRC "/corrupt_dsm/valid.dsm"));
    cr_expect(rt_dsm_is(SRC "/corrupt_dsm/plain_weights.dsm")); /* a container: rt_dsm_open decides */
    cr_expect_not(rt_dsm_is(MODEL));
    cr_expect_not(rt_dsm_is(SRC "/corrupt_dsm/text.dsm"));
    cr_expect_not(rt_dsm_is(SRC "/corrupt_dsm/empty.dsm"));
    cr_expect_not(rt_dsm_is(SRC "/corrupt_dsm/trunc_4.dsm"));
    cr_expect_not(rt_dsm_is(TMP "/no such file.dsm"));
}

Test(dsm, corpus_of_damaged_files) {
    FILE *man = fopen(SRC "/corrupt_dsm/MANIFEST.tsv", "r");
    cr_assert(man, "MANIFEST.tsv missing");
    char line[1024];
    int listed = 0;
    while (fgets(line, sizeof line, man)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        cr_assert(tab, "bad manifest line: %s", line);
        *tab = '\0';
        char path[1200];
        snprintf(path, sizeof path, SRC "/corrupt_dsm/%s", line);
        Arena *a = arena_create();
        Diag *d = diag_create();
        RtDsm m = {.model = "not zeroed"};
        cr_expect_not(rt_dsm_open(path, a, &m, d), "%s was accepted", line);
        cr_expect(m.file == NULL && m.graph == NULL && m.model == NULL, "%s: *out not zeroed", line);
        cr_expect(diag_error_count(d) > 0, "%s: no error", line);
        char *msg = test_diag_text(d, false);
        cr_expect(messages_contain(d, tab + 1), "%s: expected '%s' in: %s", line, tab + 1, msg);
        free(msg);
        expect_located(d, path);
        diag_destroy(d);
        arena_destroy(a);
        listed++;
    }
    fclose(man);
    cr_expect_geq(listed, 30, "only %d files listed", listed);
    const char *valid[] = {"valid.dsm", "valid_rewritten.dsm"};
    for (int i = 0; i < 2; i++) {
        char path[1200];
        snprintf(path, sizeof path, SRC "/corrupt_dsm/%s", valid[i]);
        Arena *a = arena_create();
        Diag *d = diag_create();
        RtDsm m;
        bool ok = rt_dsm_open(path, a, &m, d);
        char *msg = test_diag_text(d, true);
        cr_expect(ok, "%s: %s", valid[i], msg);
        free(msg);
        rt_dsm_close(&m);
        diag_destroy(d);
        arena_destroy(a);
    }
}

/* rt_dsm_open_mem on `len` bytes of buf must fail with an error. */
static void expect_refused(const char *buf, size_t len, const char *what) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    RtDsm m;
    cr_expect_not(rt_dsm_open_mem(buf, len, "damaged.dsm", a, &m, d), "%s was accepted", what);
    cr_expect(diag_error_count(d) > 0, "%s: no error", what);
    expect_located(d, "damaged.dsm");
    rt_dsm_close(&m);
    diag_destroy(d);
    arena_destroy(a);
}

Test(dsm, every_truncation_and_bit_flip_is_refused) {
    make_tmp();
    const char *path = TMP "/flip.dsm";
    write_tiny(path, 9);
    size_t len;
    char *buf = test_slurp(path, &len);
    cr_assert(buf && len > 1000);
    {
        Arena *a = arena_create();
        Diag *d = diag_create();
        RtDsm m;
        cr_assert(rt_dsm_open_mem(buf, len, "whole.dsm", a, &m, d), "the intact file is refused");
        rt_dsm_close(&m);
        diag_destroy(d);
        arena_destroy(a);
    }
    char what[64];
    for (size_t n = 0; n < len; n++) {
        char *copy = malloc(n + 1); /* exact size: ASan sees any read past the prefix */
        memcpy(copy, buf, n);
        snprintf(what, sizeof what, "the first %zu bytes", n);
        expect_refused(copy, n, what);
        free(copy);
    }
    const unsigned char masks[] = {0x01, 0x80};
    for (size_t i = 0; i < len; i++)
        for (int k = 0; k < 2; k++) {
            buf[i] ^= (char)masks[k];
            snprintf(what, sizeof what, "byte %zu ^ 0x%02x", i, masks[k]);
            expect_refused(buf, len, what);
            buf[i] ^= (char)masks[k];
        }
    free(buf);
}

Test(dsm, failed_writes_leave_nothing) {
    make_tmp();
    Arena *a = arena_create();
    Diag *d = diag_create();
    Graph *g = compile_model(a, d, true);

    /* No weights file named, none given. */
    const char *path = TMP "/none.dsm";
    unlink(path);
    RunOptions none = {0};
    cr_expect_not(rt_dsm_write(g, MODEL, &none, path, d));
    cr_expect(messages_contain(d, "names no weights file"));
    cr_expect(access(path, F_OK) != 0, "a file was left behind");
    diag_clear(d);

    /* A weights file without 'w': an existing target stays as it was. */
    const char *weights = TMP "/partial.safetensors";
    int64_t shape[1] = {6};
    Tensor *b = rt_tensor_new(DT_F32, 1, shape);
    const char *names[] = {"b"};
    const Tensor *ts[] = {b};
    cr_assert(st_write(weights, 1, names, ts, 0, NULL, NULL, d));
    rt_tensor_free(b);
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);
    RunOptions partial = {.weights = weights};
    cr_expect_not(rt_dsm_write(g, MODEL, &partial, path, d));
    cr_expect(messages_contain(d, "missing weight 'bn.bias'"));
    size_t len;
    char *text = test_slurp(path, &len);
    cr_expect(text && strcmp(text, "old") == 0, "the existing file was changed");
    free(text);
    diag_clear(d);

    /* A directory that does not exist. */
    RunOptions rnd = {.random_weights = true};
    cr_expect_not(rt_dsm_write(g, MODEL, &rnd, TMP "/no/such/dir/x.dsm", d));
    cr_expect(diag_error_count(d) > 0);

    /* Nothing but the two files made here. */
    DIR *dir = opendir(TMP);
    for (struct dirent *e; (e = readdir(dir));)
        cr_expect(e->d_name[0] == '.' || strcmp(e->d_name, "none.dsm") == 0 ||
                      strcmp(e->d_name, "partial.safetensors") == 0 || strcmp(e->d_name, "tiny.dsm") == 0 ||
                      strcmp(e->d_name, "flip.dsm") == 0,
                  "left behind: %s", e->d_name);
    closedir(dir);
    diag_destroy(d);
    arena_destroy(a);
}

Test(dsm, one_key_two_types_is_refused) {
    make_tmp();
    static const char src[] = "model twice {\n"
                              "  input x : f32[6]\n"
                              "  param a : f32[6] from \"k\"\n"
                              "  param b : f32[3] from \"k\"\n"
                              "  output y = x + a\n"
                              "  output z = b * 2.0\n"
                              "}\n";
    Arena *a = arena_create();
    Diag *d = diag_create();
    Graph *g = fe_compile_source(a, d, "twice.dsg", src, sizeof src - 1);
    PipelineOptions po = {.opt_level = 2};
    cr_assert(g && pass_run_pipeline(g, d, &po));
    const char *path = TMP "/twice.dsm";
    unlink(path);
    RunOptions rnd = {.random_weights = true};
    cr_expect_not(rt_dsm_write(g, "twice.dsg", &rnd, path, d));
    char *msg = test_diag_text(d, false);
    cr_expect(messages_contain(d, "params 'a' and 'b' read the key 'k' as different types"), "%s", msg);
    free(msg);
    cr_expect(access(path, F_OK) != 0, "a file was left behind");
    diag_destroy(d);
    arena_destroy(a);
}
