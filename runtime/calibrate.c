/* Calibration (see calibrate.h).
 *
 * The model is compiled once in f32 with a PrecisionRequest (so the precision
 * pass numbers the candidates exactly as the int8 compilation will) and
 * without fusion and memory planning; the input of every candidate becomes an
 * extra output, and the graph runs once per set.  Min-max keeps the largest
 * |x|; a percentile keeps every |x| of every set and sorts them, which is
 * fine for calibration sets (a few batches). */
#include "calibrate.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../frontend/frontend.h"

static bool is_npy(const char *name) {
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".npy") == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The sorted names in dir that are .npy files (want_npy) or directories. */
static char **list_dir(const char *dir, bool want_npy, int *n) {
    *n = 0;
    DIR *dp = opendir(dir);
    if (!dp) return NULL;
    char **v = NULL;
    int cap = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        if (e->d_name[0] == '.') continue;
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, e->d_name) < 0) break;
        struct stat st;
        bool keep = stat(path, &st) == 0 &&
                    (want_npy ? S_ISREG(st.st_mode) && is_npy(e->d_name) : S_ISDIR(st.st_mode));
        free(path);
        if (!keep) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            v = realloc(v, sizeof(char *) * (size_t)cap);
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(dp);
    if (*n) qsort(v, (size_t)*n, sizeof(char *), cmp_str);
    return v;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool add_set(CalibSets *s, const char *dir, char **npy, int nnpy, Diag *d) {
    if (s->n == 0) {
        s->ninputs = nnpy;
        s->names = calloc((size_t)nnpy + 1, sizeof(char *));
        for (int i = 0; i < nnpy; i++)
            s->names[i] = strndup(npy[i], strlen(npy[i]) - 4);
    } else {
        bool same = nnpy == s->ninputs;
        for (int i = 0; same && i < nnpy; i++)
            same = strncmp(npy[i], s->names[i], strlen(npy[i]) - 4) == 0;
        if (!same) {
            diag_error(d, loc_file(dir), "calibration set '%s' has other inputs than '%s'", dir, s->dirs[0]);
            return false;
        }
    }
    s->dirs = realloc(s->dirs, sizeof(char *) * (size_t)(s->n + 1));
    s->files = realloc(s->files, sizeof(char **) * (size_t)(s->n + 1));
    s->dirs[s->n] = strdup(dir);
    s->files[s->n] = calloc((size_t)nnpy + 1, sizeof(char *));
    for (int i = 0; i < nnpy; i++)
        if (asprintf(&s->files[s->n][i], "%s/%s", dir, npy[i]) < 0) s->files[s->n][i] = NULL;
    s->n++;
    return true;
}

bool rt_calib_sets(const char *dir, CalibSets *out, Diag *d) {
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        diag_error(d, loc_file(dir), "calibration data '%s' is not a directory", dir);
        return false;
    }
    int nnpy, nsub;
    char **npy = list_dir(dir, true, &nnpy);
    bool ok = true;
    if (nnpy) ok = add_set(out, dir, npy, nnpy, d);
    free_list(npy, nnpy);
    char **sub = list_dir(dir, false, &nsub);
    for (int i = 0; ok && i < nsub && !nnpy; i++) {
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, sub[i]) < 0) break;
        int n;
        char **files = list_dir(path, true, &n);
        if (n) ok = add_set(out, path, files, n, d);
        free_list(files, n);
        free(path);
    }
    free_list(sub, nsub);
    if (ok && out->n == 0) {
        diag_error(d, loc_file(dir),
                   "calibration data '%s' has no .npy input sets (DIR/SET/INPUT.npy or DIR/INPUT.npy)", dir);
        ok = false;
    }
    if (!ok) rt_calib_sets_free(out);
    return ok;
}

void rt_calib_sets_free(CalibSets *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->dirs[i]);
        for (int k = 0; k < s->ninputs; k++)
            free(s->files[i][k]);
        free(s->files[i]);
    }
    for (int k = 0; k < s->ninputs; k++)
        free(s->names[k]);
    free(s->names);
    free(s->dirs);
    free(s->files);
    memset(s, 0, sizeof *s);
}

void rt_calib_set_inputs(const CalibSets *s, int i, RunOptions *run) {
    run->random_inputs = false;
    run->ninputs = s->ninputs;
    run->input_names = (const char *const *)s->names;
    run->input_files = (const char *const *)s->files[i];
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bool rt_calibrate(const char *file, const CalibOptions *o, double *absmax, int *ncand, PrecisionRequest *req,
                  Diag *d) {
    *ncand = 0;
    Arena *a = arena_create();
    Graph *g = fe_compile_file(a, d, file);
    RunOptions run = o->run;
    run.summary = NULL;
    run.output_dir = NULL;
    if (g && run.random_weights) run.as_written = fe_compile_file(a, d, file);
    const char **disabled = calloc((size_t)o->ndisabled + 3, sizeof(char *));
    for (int i = 0; i < o->ndisabled; i++)
        disabled[i] = o->disabled[i];
    disabled[o->ndisabled] = "fuse";
    disabled[o->ndisabled + 1] = "memplan";
    PipelineOptions po = {
        .opt_level = o->opt_level, .disabled = disabled, .ndisabled = o->ndisabled + 2, .sparse = o->sparse};
    bool ok = g && (!run.random_weights || run.as_written);
    if (ok) {
        g->precision = arena_alloc(a, sizeof(PrecisionRequest)); /* f32: numbers the candidates only */
        ok = pass_run_pipeline(g, d, &po);
    }
    int nout = ok ? g->noutputs : 0, nc = ok ? g->precision->ncand : 0;
    for (int i = 0; i < nc; i++)
        ir_add_output(g, arena_printf(a, "calib.%d", i), (Node *)g->precision->cand_input[i], g->loc);
    double **vals = calloc((size_t)nc + 1, sizeof(double *));
    int64_t *nvals = calloc((size_t)nc + 1, sizeof(int64_t));
    for (int i = 0; i < nc; i++)
        absmax[i] = 0;
    bool keep_all = o->percentile < 100;
    for (int s = 0; ok && s < o->sets->n; s++) {
        rt_calib_set_inputs(o->sets, s, &run);
        Tensor **outs = calloc((size_t)g->noutputs + 1, sizeof(Tensor *));
        ok = rt_run_model(g, file, &run, outs, d);
        for (int i = 0; ok && i < nc; i++) {
            const Tensor *t = outs[nout + i];
            int64_t n = rt_numel(t->rank, t->shape);
            if (keep_all) vals[i] = realloc(vals[i], sizeof(double) * (size_t)(nvals[i] + n + 1));
            for (int64_t j = 0; j < n; j++) {
                double v = fabs(rt_get(t, j));
                if (keep_all) vals[i][nvals[i]++] = v;
                if (v > absmax[i]) absmax[i] = v;
            }
        }
        for (int i = 0; ok && i < g->noutputs; i++)
            rt_tensor_free(outs[i]);
        free(outs);
    }
    for (int i = 0; ok && keep_all && i < nc; i++) {
        if (!nvals[i]) continue;
        qsort(vals[i], (size_t)nvals[i], sizeof(double), cmp_double);
        int64_t k = (int64_t)ceil(o->percentile / 100 * (double)nvals[i]) - 1;
        absmax[i] = vals[i][k < 0 ? 0 : k >= nvals[i] ? nvals[i] - 1 : k];
    }
    for (int i = 0; i < nc; i++)
        free(vals[i]);
    free(vals);
    free(nvals);
    free(disabled);
    *ncand = ok ? nc : 0;
    if (ok && req) *req = *g->precision;
    arena_destroy(a);
    return ok;
}
