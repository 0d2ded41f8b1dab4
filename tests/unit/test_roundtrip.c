/* Round trip: the printer emits valid DSG, and printing is a fixed point:
 * print(parse(print(parse(x)))) == print(parse(x)), for every example and
 * every model in tests/roundtrip/, before and after the pass pipeline. */
#include <criterion/criterion.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "../support.h"

static void roundtrip_file(const char *path, int opt) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    Graph *g = fe_compile_file(a, d, path);
    char *errs = test_diag_text(d, true);
    cr_assert(g, "%s does not compile:\n%s", path, errs);
    free(errs);
    PipelineOptions po = {.opt_level = opt};
    cr_assert(pass_run_pipeline(g, d, &po), "%s: pipeline failed", path);
    char *p1 = test_print_dsg(g);
    Graph *g2 = fe_compile_source(a, d, "printed.dsg", p1, strlen(p1));
    errs = test_diag_text(d, true);
    cr_assert(g2, "printed %s does not compile:\n%s\n%s", path, p1, errs);
    free(errs);
    char *p2 = test_print_dsg(g2);
    cr_assert_str_eq(p2, p1, "%s: printing is not a fixed point", path);
    /* the reparsed graph has the same interface */
    cr_assert_eq(g2->noutputs, g->noutputs);
    for (int i = 0; i < g->noutputs; i++) {
        cr_assert_str_eq(g2->outputs[i].name, g->outputs[i].name);
        /* DimIds are per graph: compare the printed types */
        cr_assert_str_eq(ir_type_str(g2, &g2->outputs[i].node->type), ir_type_str(g, &g->outputs[i].node->type),
                         "%s: output %s type differs", path, g->outputs[i].name);
    }
    free(p1);
    free(p2);
    diag_destroy(d);
    arena_destroy(a);
}

static void roundtrip_glob(const char *pattern, int opt) {
    glob_t gl;
    int rc = glob(pattern, 0, NULL, &gl);
    cr_assert_eq(rc, 0, "no files match %s", pattern);
    for (size_t i = 0; i < gl.gl_pathc; i++) roundtrip_file(gl.gl_pathv[i], opt);
    globfree(&gl);
}

Test(roundtrip, examples_O0) { roundtrip_glob("examples/*.dsg", 0); }
Test(roundtrip, examples_O2) { roundtrip_glob("examples/*.dsg", 2); }
Test(roundtrip, corpus_O0) { roundtrip_glob("tests/roundtrip/*.dsg", 0); }
Test(roundtrip, corpus_O2) { roundtrip_glob("tests/roundtrip/*.dsg", 2); }

/* The printed form keeps what the source said: names, bounds, weights, keys,
 * hints and attribute values. */
Test(roundtrip, printed_text) {
    const char *src = "model m {\n"
                      "  weights \"w.safetensors\"\n"
                      "  dim B, S <= 512\n"
                      "  input x : f32[B, S*2, 8]\n"
                      "  param w : f32[4, 8] from \"layer.w\" @sparse(block=[2, 2], density=0.5)\n"
                      "  let h = linear(x, w) * 0.5 @precision(f16)\n"
                      "  output y = softmax(h, axis=-1)\n"
                      "  output h\n"
                      "}\n";
    Arena *a = arena_create();
    Diag *d = diag_create();
    Graph *g = fe_compile_source(a, d, "t.dsg", src, strlen(src));
    cr_assert(g);
    char *p = test_print_dsg(g);
    const char *expect = "model m {\n"
                         "  weights \"w.safetensors\"\n"
                         "  dim B\n"
                         "  dim S <= 512\n"
                         "  input x : f32[B, 2*S, 8]\n"
                         "  param w : f32[4, 8] from \"layer.w\" @sparse(block=[2, 2], density=0.5)\n"
                         "  let _t0 = linear(x, w)\n"
                         "  let h = mul(_t0, 0.5) @precision(dtype=f16)\n"
                         "  let y = softmax(h, axis=-1)\n"
                         "  output y\n"
                         "  output h\n"
                         "}\n";
    cr_assert_str_eq(p, expect);
    free(p);
    diag_destroy(d);
    arena_destroy(a);
}
