/* The accuracy guard (see precision_guard.h).
 *
 * Every measurement is a full compilation of the model from its file (the
 * frontend and the pass pipeline, with a PrecisionRequest whose keep_f32
 * says which candidates stay f32) and a run with rt_run_model on the data
 * the caller describes, so what is measured is exactly what `dsc run
 * --precision` computes on that device.  Candidates are numbered by the
 * precision pass in node order, the same on every compilation of one file.
 *
 * Steps: the f32 reference; the error with every candidate as requested;
 * per low-precision candidate, the error with it alone lowered (its
 * contribution); then, while over budget, the candidate with the largest
 * contribution still lowered goes back to f32 and the error is measured
 * again.  Cost: 2 + (low-precision candidates) + (moves) runs. */
#include "precision_guard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../frontend/frontend.h"

double rt_outputs_rel_error(Tensor *const *got, Tensor *const *want, int n) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        if (!dtype_is_float(want[i]->dtype)) continue;
        int64_t total = rt_numel(want[i]->rank, want[i]->shape);
        double err = 0, ref = 0;
        for (int64_t j = 0; j < total; j++) {
            double a = rt_get(got[i], j), b = rt_get(want[i], j);
            err += (a - b) * (a - b);
            ref += b * b;
        }
        double rel = ref > 0 ? sqrt(err / ref) : sqrt(err);
        if (!(rel <= worst)) worst = rel; /* NaN wins */
    }
    return worst;
}

typedef struct {
    const char *file;
    const GuardOptions *o;
    Diag *d;
    RunOptions run;
    int nout;
    Tensor **ref;
} G;

static void free_outputs(Tensor **t, int n) {
    for (int i = 0; t && i < n; i++)
        rt_tensor_free(t[i]);
    free(t);
}

/* Compiles with precision `dt` (keep: candidates kept f32, or NULL) and runs;
 * *out receives the outputs, req (if non-NULL) the pass's candidate table. */
static bool compile_run(G *s, DType dt, const bool *keep, Tensor ***out, PrecisionRequest *req) {
    Arena *a = arena_create();
    Graph *g = fe_compile_file(a, s->d, s->file);
    bool ok = g != NULL;
    if (ok && dt != DT_F32) {
        g->precision = arena_alloc(a, sizeof(PrecisionRequest));
        g->precision->dtype = dt;
        g->precision->keep_f32 = keep;
        g->precision->nkeep = keep ? PREC_MAX_CAND : 0;
        g->precision->act_absmax = s->o->act_absmax;
        g->precision->nabsmax = s->o->nabsmax;
    }
    PipelineOptions po = {
        .opt_level = s->o->opt_level,
        .disabled = s->o->disabled,
        .ndisabled = s->o->ndisabled,
        .sparse = s->o->sparse};
    ok = ok && pass_run_pipeline(g, s->d, &po);
    if (ok && req && g->precision) *req = *g->precision;
    Tensor **t = NULL;
    if (ok) {
        s->nout = g->noutputs;
        t = calloc((size_t)g->noutputs + 1, sizeof(Tensor *));
        ok = rt_run_model(g, s->file, &s->run, t, s->d);
    }
    if (!ok) {
        free(t);
        t = NULL;
    }
    *out = t;
    arena_destroy(a);
    return ok;
}

static bool measure(G *s, const bool *keep, double *err, PrecisionRequest *req) {
    Tensor **t;
    if (!compile_run(s, s->o->dtype, keep, &t, req)) return false;
    *err = rt_outputs_rel_error(t, s->ref, s->nout);
    free_outputs(t, s->nout);
    return true;
}

static void print_table(FILE *f, const GuardOptions *o, const GuardResult *r) {
    fprintf(f, "precision guard: %s, budget %.3g (largest relative L2 error over the outputs)\n",
            pass_precision_name(o->dtype), o->budget);
    fprintf(f, "  %-72s %-9s %s\n", "op", "precision", "error with it alone lowered");
    for (int i = 0; i < r->ncand; i++) {
        const PrecisionCand *c = &r->cand[i];
        DType final = r->keep[i] ? DT_F32 : c->chosen;
        fprintf(f, "  %-72s %-9s ", c->label, pass_precision_name(final));
        if (r->alone[i] >= 0)
            fprintf(f, "%.3g%s\n", r->alone[i], r->keep[i] ? " (moved back to f32)" : "");
        else
            fprintf(f, "-%s%s\n", c->why ? " " : "", c->why ? c->why : "");
    }
    fprintf(f, "  error: all as requested %.3g, final %.3g (%d moved back to f32): %s\n", r->error_all,
            r->error_final, r->moved, r->met ? "within budget" : "OVER BUDGET");
}

bool rt_precision_guard(const char *file, const GuardOptions *o, GuardResult *r, Diag *d) {
    memset(r, 0, sizeof *r);
    G s = {.file = file, .o = o, .d = d, .run = o->run};
    s.run.summary = NULL;
    s.run.output_dir = NULL;
    Arena *wa = arena_create(); /* the model as written: random weight ranges */
    bool ok = true;
    if (s.run.random_weights) {
        s.run.as_written = fe_compile_file(wa, d, file);
        ok = s.run.as_written != NULL;
    }
    ok = ok && compile_run(&s, DT_F32, NULL, &s.ref, NULL);
    PrecisionRequest *req = calloc(1, sizeof *req);
    bool *keep = calloc(PREC_MAX_CAND, sizeof(bool));
    ok = ok && measure(&s, NULL, &r->error_all, req);
    if (ok) {
        r->ncand = req->ncand;
        memcpy(r->cand, req->cand, sizeof(PrecisionCand) * (size_t)req->ncand);
    }
    /* contributions: each low-precision op alone */
    for (int i = 0; ok && i < r->ncand; i++) {
        r->alone[i] = -1;
        if (r->cand[i].chosen == DT_F32) continue;
        for (int j = 0; j < r->ncand; j++)
            keep[j] = j != i;
        ok = measure(&s, keep, &r->alone[i], NULL);
    }
    r->error_final = r->error_all;
    while (ok && !(r->error_final <= o->budget)) {
        int best = -1;
        for (int i = 0; i < r->ncand; i++)
            if (!r->keep[i] && r->alone[i] >= 0 && (best < 0 || !(r->alone[i] <= r->alone[best]))) best = i;
        if (best < 0) break; /* everything is f32 already */
        r->keep[best] = true;
        r->moved++;
        memcpy(keep, r->keep, sizeof(bool) * PREC_MAX_CAND);
        ok = measure(&s, keep, &r->error_final, NULL);
    }
    r->met = r->error_final <= o->budget;
    if (ok && o->report) print_table(o->report, o, r);
    free(keep);
    free(req);
    free_outputs(s.ref, s.nout);
    arena_destroy(wa);
    return ok;
}
