/* Benchmarking a model (see bench.h).
 *
 * Why one timed run is a whole rt_exec_run call rather than the kernels
 * alone: that is what a caller of the library pays per inference today
 * (dims bound from the inputs, the arena allocated and zeroed, load-time
 * kernels run again, outputs copied out), so the latency reported is the one
 * `dsc run` would see without its start-up.  The profile shows how much of it
 * is outside the kernels (profile_other_ms), which is where an executor that
 * keeps its arena and its load-time values between runs would save.
 *
 * Devices: auto is the host backend when this build has it, else the
 * interpreter (with a warning), and the interpreter too when the host backend
 * cannot compile the model (with a warning saying why) -- as `dsc run` does;
 * the GPU is not benchmarked yet (cuda is an error).
 *
 * Timing: CLOCK_MONOTONIC around each run; median, min, mean and max over the
 * timed runs; every sample is kept for the JSON output.  Throughput is
 * 1000 / median_ms inferences per second (one inference is one run of the
 * model on its inputs, whatever their batch dim); GFLOP/s is the flops
 * estimate over the median. */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "../codegen/lower.h"
#include "exec.h"
#include "interp.h"
#include "sparse.h"
#include "threadpool.h"

double rt_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of n values (n >= 1); `tmp` has room for n. */
static double median(const double *v, int n, double *tmp) {
    memcpy(tmp, v, sizeof *tmp * (size_t)n);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

/* ---- the profiling launcher ----------------------------------------------------- */

typedef struct {
    const KProgram *p;
    HostBackend *hb;
    int next;      /* the kernel expected next (program order) */
    double *cur;   /* seconds per kernel in the current run */
} Prof;

static bool prof_launch(void *ctx, const Graph *g, const Kernel *k, void *const *bufs, const int64_t *dims,
                        Diag *d) {
    Prof *pf = ctx;
    int i = pf->next < pf->p->nkernels && pf->p->kernels[pf->next] == k ? pf->next : -1;
    for (int j = 0; i < 0 && j < pf->p->nkernels; j++)
        if (pf->p->kernels[j] == k) i = j;
    double t0 = rt_bench_now();
    bool ok = rt_host_launch(pf->hb, g, k, bufs, dims, d);
    double t = rt_bench_now() - t0;
    if (i >= 0) {
        pf->cur[i] += t;
        pf->next = i + 1;
    }
    return ok;
}

/* ---- the benchmark ------------------------------------------------------------------- */

/* Sum of a kernel estimate over the program at the bound dims; -1 if any is unknown. */
static double program_estimate(const Graph *g, const KProgram *p, const int64_t *syms, bool flops) {
    if (!p || p->nkernels == 0) return -1;
    double sum = 0;
    for (int i = 0; i < p->nkernels; i++) {
        DimId e = flops ? p->kernels[i]->flops : p->kernels[i]->bytes;
        int64_t v;
        if (e == DIM_INVALID || !dim_eval(g->dims, e, syms, &v, NULL, 0) || v < 0) return -1;
        sum += (double)v;
    }
    return sum;
}

static double kernel_estimate(const Graph *g, const Kernel *k, const int64_t *syms, bool flops) {
    DimId e = flops ? k->flops : k->bytes;
    int64_t v;
    if (e == DIM_INVALID || !dim_eval(g->dims, e, syms, &v, NULL, 0) || v < 0) return -1;
    return (double)v;
}

/* Copies the warnings (and errors) of `from` into d. */
static void forward_diags(Diag *d, Diag *from) {
    for (int i = 0; i < diag_count(from); i++) {
        DiagLevel level;
        Loc loc;
        const char *msg = diag_message(from, i, &level, &loc);
        diag_report(d, level, loc, "%s", msg);
    }
}

/* The first error of `setup`, else its first message, for a fallback warning. */
static const char *first_reason(Diag *setup) {
    const char *why = NULL;
    DiagLevel level = DIAG_ERROR;
    Loc loc;
    for (int i = 0; i < diag_count(setup) && (!why || level != DIAG_ERROR); i++) why = diag_message(setup, i, &level, &loc);
    return why ? why : "unknown error";
}

bool rt_bench_model(const Graph *g, const char *model_path, const BenchOptions *opt, BenchResult *res, Diag *d) {
    memset(res, 0, sizeof *res);
    res->model = g->name;
    res->flops = res->bytes = -1;
    res->iters = opt->iters;
    res->warmup = opt->warmup;
    if (opt->iters < 1 || opt->warmup < 0) {
        diag_error(d, loc_file(g->file), "bench: need at least one timed run and no negative warm-up count");
        return false;
    }
    for (int b = 0; b < opt->run.nbinds; b++)
        if (dim_sym_lookup(g->dims, opt->run.bind_names[b]) < 0) {
            diag_error(d, loc_file(g->file), "--bind: model '%s' has no dim '%s'", g->name, opt->run.bind_names[b]);
            return false;
        }
    RtDevice dev = opt->run.device;
    if (dev == RT_DEVICE_CUDA) {
        diag_error(d, loc_file(g->file), "device 'cuda' is not available to dsc bench yet (use cpu or ref)");
        return false;
    }
    if (dev == RT_DEVICE_CPU && !rt_host_available()) {
        diag_error(d, loc_file(g->file), "device 'cpu' is not available: the host backend is not built "
                                         "(dsc was configured with -DDSC_WITH_LLVM=OFF); use --device ref");
        return false;
    }
    if (dev == RT_DEVICE_AUTO) {
        dev = rt_host_available() ? RT_DEVICE_CPU : RT_DEVICE_REF;
        if (dev == RT_DEVICE_REF)
            diag_warning(d, loc_file(g->file), "the host backend is not built (-DDSC_WITH_LLVM=OFF); "
                                               "benchmarking the reference interpreter");
    }

    int nsyms = dim_sym_count(g->dims), nk = 0, total_runs = opt->warmup + opt->iters;
    int64_t *syms = calloc((size_t)nsyms + 1, sizeof *syms);
    RtModelData md = {0};
    KProgram prog = {0};
    HostBackend *hb = NULL;
    Tensor **outs = calloc((size_t)g->noutputs + 1, sizeof *outs);
    double *prof_samples = NULL, *tmp = NULL, *cur = NULL;
    bool ok = false;
    res->samples_ms = calloc((size_t)opt->iters, sizeof *res->samples_ms);
    tmp = calloc((size_t)opt->iters, sizeof *tmp);
    if (!syms || !outs || !res->samples_ms || !tmp) {
        diag_error(d, loc_file(g->file), "out of memory");
        goto done;
    }

    /* inputs and weights */
    double t0 = rt_bench_now();
    if (!rt_model_data_load(g, model_path, &opt->run, &md, d)) goto done;
    res->data_ms = (rt_bench_now() - t0) * 1e3;
    if (!rt_bind_dims(g, md.inputs, md.ninputs, syms, d)) goto done;
    res->ndims = nsyms;
    res->dim_names = calloc((size_t)nsyms + 1, sizeof *res->dim_names);
    res->dim_values = calloc((size_t)nsyms + 1, sizeof *res->dim_values);
    if (!res->dim_names || !res->dim_values) {
        diag_error(d, loc_file(g->file), "out of memory");
        goto done;
    }
    for (int s = 0; s < nsyms; s++) {
        res->dim_names[s] = dim_sym_name(g->dims, s);
        res->dim_values[s] = syms[s];
    }

    /* lowering (for the estimates on every device) and compiling */
    t0 = rt_bench_now();
    Diag *setup = diag_create();
    rt_sparse_decide_hwdb(g, false);
    bool lowered = cg_lower((Graph *)g, &prog, setup);
    if (dev == RT_DEVICE_CPU) {
        HostOptions ho = {.no_cache = opt->no_cache};
        hb = lowered ? rt_host_create(&ho, setup) : NULL;
        bool ready = hb && rt_host_prepare(hb, g, &prog, setup);
        if (!ready && opt->run.device == RT_DEVICE_AUTO) {
            diag_warning(d, loc_file(g->file),
                         "the host backend cannot run this model (%s); benchmarking the reference interpreter",
                         first_reason(setup));
            rt_host_destroy(hb);
            hb = NULL;
            dev = RT_DEVICE_REF;
        } else {
            forward_diags(d, setup);
            if (!ready) {
                diag_destroy(setup);
                goto done;
            }
            res->compile_ms = (rt_bench_now() - t0) * 1e3;
            res->host = rt_host_stats(hb);
        }
    }
    diag_destroy(setup);
    res->device = dev;
    if (lowered) {
        nk = prog.nkernels;
        res->nkernels = nk;
        res->flops = program_estimate(g, &prog, syms, true);
        res->bytes = program_estimate(g, &prog, syms, false);
    }
    if (dev == RT_DEVICE_CPU) {
        snprintf(res->target, sizeof res->target, "%s", rt_host_describe(hb));
        res->threads = rt_threadpool_size(rt_threadpool_global());
    } else {
        snprintf(res->target, sizeof res->target, "reference interpreter, 1 thread");
        res->threads = 1;
    }

    /* the profile, host backend only */
    bool profile = opt->profile && dev == RT_DEVICE_CPU && nk > 0;
    if (opt->profile && !profile)
        diag_warning(d, loc_file(g->file), "--profile times the kernels of the host backend (--device cpu) only");
    Prof pf = {.p = &prog, .hb = hb};
    if (profile) {
        prof_samples = calloc((size_t)nk * (size_t)opt->iters, sizeof *prof_samples);
        cur = calloc((size_t)nk, sizeof *cur);
        if (!prof_samples || !cur) {
            diag_error(d, loc_file(g->file), "out of memory");
            goto done;
        }
        pf.cur = cur;
    }

    /* the runs */
    for (int r = 0; r < total_runs; r++) {
        if (profile) {
            memset(cur, 0, sizeof *cur * (size_t)nk);
            pf.next = 0;
        }
        double start = rt_bench_now();
        bool ran;
        if (dev == RT_DEVICE_REF)
            ran = rt_interp_run(g, md.inputs, md.ninputs, md.params, outs, d);
        else if (profile)
            ran = rt_exec_run(g, &prog, md.inputs, md.ninputs, md.params, outs, prof_launch, &pf, d);
        else
            ran = rt_exec_run(g, &prog, md.inputs, md.ninputs, md.params, outs, rt_host_launch, hb, d);
        double ms = (rt_bench_now() - start) * 1e3;
        if (!ran) goto done;
        if (r == 0) res->first_ms = ms;
        if (r >= opt->warmup) {
            int i = r - opt->warmup;
            res->samples_ms[i] = ms;
            if (profile)
                for (int k = 0; k < nk; k++) prof_samples[(size_t)k * (size_t)opt->iters + (size_t)i] = cur[k] * 1e3;
        }
        if (r + 1 < total_runs)
            for (int i = 0; i < g->noutputs; i++) {
                rt_tensor_free(outs[i]);
                outs[i] = NULL;
            }
    }

    /* statistics */
    res->median_ms = median(res->samples_ms, opt->iters, tmp);
    res->min_ms = tmp[0];
    res->max_ms = tmp[opt->iters - 1];
    double sum = 0;
    for (int i = 0; i < opt->iters; i++) sum += res->samples_ms[i];
    res->mean_ms = sum / opt->iters;
    if (profile) {
        res->profile = calloc((size_t)nk, sizeof *res->profile);
        if (!res->profile) {
            diag_error(d, loc_file(g->file), "out of memory");
            goto done;
        }
        res->nprofile = nk;
        double inside = 0;
        for (int k = 0; k < nk; k++) {
            const Kernel *kr = prog.kernels[k];
            BenchKernel *bk = &res->profile[k];
            bk->name = kr->name;
            bk->load_time = kr->load_time;
            bk->median_ms = median(prof_samples + (size_t)k * (size_t)opt->iters, opt->iters, tmp);
            bk->min_ms = tmp[0];
            bk->flops = kernel_estimate(g, kr, syms, true);
            bk->bytes = kernel_estimate(g, kr, syms, false);
            inside += bk->median_ms;
        }
        res->profile_other_ms = res->median_ms - inside;
    }
    res->noutputs = g->noutputs;
    res->outputs = outs;
    outs = NULL;
    ok = true;
done:
    if (outs)
        for (int i = 0; i < g->noutputs; i++) rt_tensor_free(outs[i]);
    free(outs);
    rt_host_destroy(hb);
    rt_model_data_free(&md);
    free(syms);
    free(prof_samples);
    free(cur);
    free(tmp);
    return ok;
}

void rt_bench_result_free(BenchResult *res) {
    if (!res) return;
    for (int i = 0; res->outputs && i < res->noutputs; i++) rt_tensor_free(res->outputs[i]);
    free(res->outputs);
    free(res->samples_ms);
    free(res->profile);
    free(res->dim_names);
    free(res->dim_values);
    memset(res, 0, sizeof *res);
}

/* ---- printing ------------------------------------------------------------------------ */

static void add_estimate(cJSON *o, const char *key, double v) {
    if (v >= 0)
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* v per ms, in units of 1e9 per second; -1 when unknown. */
static double giga_rate(double v, double ms) { return v >= 0 && ms > 0 ? v / (ms * 1e6) : -1; }

static void print_json(FILE *out, const BenchResult *r, const char *file) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", r->model ? r->model : "");
    if (file) cJSON_AddStringToObject(o, "file", file);
    cJSON_AddStringToObject(o, "device", rt_device_name(r->device));
    cJSON_AddStringToObject(o, "target", r->target);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON *dims = cJSON_AddObjectToObject(o, "dims");
    for (int s = 0; s < r->ndims; s++) cJSON_AddNumberToObject(dims, r->dim_names[s], (double)r->dim_values[s]);
    cJSON_AddNumberToObject(o, "iters", r->iters);
    cJSON_AddNumberToObject(o, "warmup", r->warmup);
    cJSON_AddNumberToObject(o, "load_ms", r->load_ms);
    cJSON_AddNumberToObject(o, "data_ms", r->data_ms);
    cJSON_AddNumberToObject(o, "compile_ms", r->compile_ms);
    cJSON_AddNumberToObject(o, "first_ms", r->first_ms);
    cJSON_AddNumberToObject(o, "median_ms", r->median_ms);
    cJSON_AddNumberToObject(o, "min_ms", r->min_ms);
    cJSON_AddNumberToObject(o, "mean_ms", r->mean_ms);
    cJSON_AddNumberToObject(o, "max_ms", r->max_ms);
    cJSON_AddNumberToObject(o, "throughput_per_s", r->median_ms > 0 ? 1e3 / r->median_ms : 0);
    add_estimate(o, "flops", r->flops);
    add_estimate(o, "gflops_per_s", giga_rate(r->flops, r->median_ms));
    add_estimate(o, "bytes", r->bytes);
    cJSON_AddNumberToObject(o, "kernels", r->nkernels);
    cJSON_AddNumberToObject(o, "kernels_compiled", r->host.compiled);
    cJSON_AddNumberToObject(o, "kernels_cached", r->host.cache_hits);
    cJSON *samples = cJSON_AddArrayToObject(o, "samples_ms");
    for (int i = 0; i < r->iters && r->samples_ms; i++) cJSON_AddItemToArray(samples, cJSON_CreateNumber(r->samples_ms[i]));
    if (r->profile) {
        cJSON *pa = cJSON_AddArrayToObject(o, "profile");
        for (int k = 0; k < r->nprofile; k++) {
            const BenchKernel *bk = &r->profile[k];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", bk->name);
            cJSON_AddBoolToObject(e, "load_time", bk->load_time);
            cJSON_AddNumberToObject(e, "median_ms", bk->median_ms);
            cJSON_AddNumberToObject(e, "min_ms", bk->min_ms);
            add_estimate(e, "flops", bk->flops);
            add_estimate(e, "bytes", bk->bytes);
            add_estimate(e, "gflops_per_s", giga_rate(bk->flops, bk->median_ms));
            add_estimate(e, "gb_per_s", giga_rate(bk->bytes, bk->median_ms));
            cJSON_AddItemToArray(pa, e);
        }
        cJSON_AddNumberToObject(o, "profile_other_ms", r->profile_other_ms);
    }
    char *text = cJSON_PrintUnformatted(o);
    fprintf(out, "%s\n", text);
    free(text);
    cJSON_Delete(o);
}

/* "12.3" or "-" */
static const char *rate_str(double v, char *buf, size_t n) {
    if (v < 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.1f", v);
    return buf;
}

static void print_text(FILE *out, const BenchResult *r, const char *file) {
    fprintf(out, "bench %s", r->model ? r->model : "?");
    if (file) fprintf(out, " (%s)", file);
    fprintf(out, "\n");
    fprintf(out, "  device      %s: %s\n", rt_device_name(r->device), r->target); /* the target names the threads */
    fprintf(out, "  dims       ");
    for (int s = 0; s < r->ndims; s++) fprintf(out, " %s=%lld", r->dim_names[s], (long long)r->dim_values[s]);
    fprintf(out, "%s\n", r->ndims ? "" : " (none)");
    fprintf(out, "  load        %.1f ms parse, check and passes; %.1f ms inputs and weights\n", r->load_ms, r->data_ms);
    if (r->device == RT_DEVICE_CPU)
        fprintf(out, "  compile     %.1f ms lowering and JIT: %d kernel%s (%d compiled, %d from the cache)\n",
                r->compile_ms, r->nkernels, r->nkernels == 1 ? "" : "s", r->host.compiled, r->host.cache_hits);
    fprintf(out, "  first run   %.3f ms\n", r->first_ms);
    fprintf(out, "  latency     median %.3f ms, min %.3f ms, mean %.3f ms, max %.3f ms (%d run%s after %d warm-up)\n",
            r->median_ms, r->min_ms, r->mean_ms, r->max_ms, r->iters, r->iters == 1 ? "" : "s", r->warmup);
    fprintf(out, "  throughput  %.2f inferences/s", r->median_ms > 0 ? 1e3 / r->median_ms : 0);
    if (r->flops >= 0)
        fprintf(out, ", %.2f GFLOP/s (estimates per inference: %.4g GFLOP", giga_rate(r->flops, r->median_ms),
                r->flops * 1e-9);
    if (r->flops >= 0 && r->bytes >= 0) fprintf(out, ", %.4g MB moved", r->bytes * 1e-6);
    fprintf(out, "%s\n", r->flops >= 0 ? ")" : "");
    if (r->profile) {
        fprintf(out, "  %-32s %10s %10s %6s %9s %8s\n", "kernel (per inference)", "median ms", "min ms", "share",
                "GFLOP/s", "GB/s");
        for (int k = 0; k < r->nprofile; k++) {
            const BenchKernel *bk = &r->profile[k];
            char a[32], b[32];
            fprintf(out, "  %-32s %10.3f %10.3f %5.1f%% %9s %8s%s\n", bk->name, bk->median_ms, bk->min_ms,
                    r->median_ms > 0 ? 100 * bk->median_ms / r->median_ms : 0,
                    rate_str(giga_rate(bk->flops, bk->median_ms), a, sizeof a),
                    rate_str(giga_rate(bk->bytes, bk->median_ms), b, sizeof b), bk->load_time ? "  (load-time)" : "");
        }
        fprintf(out, "  %-32s %10.3f %10s %5.1f%%\n", "(outside kernels)", r->profile_other_ms, "",
                r->median_ms > 0 ? 100 * r->profile_other_ms / r->median_ms : 0);
    }
}

void rt_bench_print(FILE *out, const BenchResult *res, const char *file, bool json) {
    if (json)
        print_json(out, res, file);
    else
        print_text(out, res, file);
}
