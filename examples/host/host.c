/* A C host program for dsc: load a model once, run it at several sequence
 * lengths, check every result against an expected file, report latency, then
 * run two sessions on two threads sharing the one model and check both.
 *
 *   host MODEL WEIGHTS DATA S...
 *
 * MODEL is examples/bert_layer.dsg, or the compiled model made from it
 * (dsc compile examples/bert_layer.dsg --weights W -o bert.dsm), or any model
 * with inputs x [B, S, D] and mask [B, 1, 1, S] and one output y; WEIGHTS its
 * safetensors file ("-" for a .dsm, which holds its weights); DATA a
 * directory holding, for each S, x_S.npy, mask_S.npy and the expected
 * y_S.npy (make_data.py writes them with numpy).  DSC_DEVICE=cpu|cuda|ref
 * picks the device (default: auto).  Exit status 0 when every result is
 * within the tolerance.
 *
 * Build against the installed library with CMake (CMakeLists.txt here:
 * find_package(dsc)) or pkg-config (Makefile here):
 *   cc -O2 host.c $(pkg-config --cflags --libs dsc) -lpthread -o host */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <dsc.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_LENGTHS = 16, TIMED_RUNS = 5, THREAD_ROUNDS = 3 };
static const double TOLERANCE = 1e-4; /* relative L2 error against numpy (float64) */

/* ---- a minimal .npy reader: little-endian f32, C order ------------------------- */

static float *read_npy_f32(const char *path, dsc_tensor *t) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return NULL;
    }
    unsigned char pre[10];
    char header[4096];
    float *data = NULL;
    size_t hlen = 0;
    if (fread(pre, 1, 10, f) == 10 && memcmp(pre, "\x93NUMPY\x01\x00", 8) == 0) hlen = pre[8] | pre[9] << 8;
    if (hlen > 0 && hlen < sizeof header && fread(header, 1, hlen, f) == hlen)
        header[hlen] = 0;
    else
        header[0] = 0;
    const char *p = strstr(header, "'shape': (");
    if (!p || !strstr(header, "'descr': '<f4'") || !strstr(header, "'fortran_order': False")) {
        fprintf(stderr, "%s: not a little-endian f32 C-order .npy file\n", path);
        fclose(f);
        return NULL;
    }
    p += strlen("'shape': (");
    memset(t, 0, sizeof *t);
    t->dtype = DSC_F32;
    size_t n = 1;
    while (t->rank < DSC_MAX_RANK) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) break;
        t->shape[t->rank++] = v;
        n *= (size_t)v;
        p = end + strspn(end, ", ");
    }
    t->nbytes = n * sizeof(float);
    data = malloc(t->nbytes ? t->nbytes : 1);
    if (!data || fread(data, 1, t->nbytes, f) != t->nbytes) {
        fprintf(stderr, "%s: short file\n", path);
        free(data);
        data = NULL;
    }
    fclose(f);
    t->data = data;
    return data;
}

/* ---- the data of one sequence length ----------------------------------------------- */

typedef struct {
    long s;
    dsc_tensor in[2]; /* x, mask */
    dsc_tensor want;  /* y */
} Case;

static int load_case(const char *dir, long s, Case *c) {
    char path[4096];
    const char *names[3] = {"x", "mask", "y"};
    dsc_tensor *dst[3] = {&c->in[0], &c->in[1], &c->want};
    c->s = s;
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s_%ld.npy", dir, names[i], s);
        if (!read_npy_f32(path, dst[i])) return 0;
    }
    return 1;
}

static double rel_l2(const dsc_tensor *got, const dsc_tensor *want) {
    if (got->dtype != DSC_F32 || got->nbytes != want->nbytes || got->rank != want->rank) return INFINITY;
    const float *g = got->data, *w = want->data;
    double num = 0, den = 0;
    for (size_t i = 0; i < want->nbytes / sizeof(float); i++) {
        if (!isfinite(g[i])) return INFINITY;
        num += ((double)g[i] - w[i]) * ((double)g[i] - w[i]);
        den += (double)w[i] * w[i];
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs one case on a session and checks it; the error in *err. */
static dsc_status run_case(dsc_session *s, const Case *c, double *err) {
    dsc_tensor y = {0}; /* data NULL: the session's memory, valid until its next run */
    dsc_status st = dsc_session_run(s, c->in, 2, &y, 1);
    *err = st == DSC_OK ? rel_l2(&y, &c->want) : INFINITY;
    return st;
}

/* ---- two threads, two sessions, one model ------------------------------------------------ */

typedef struct {
    dsc_model *model;
    const Case *cases;
    int ncases, id, failures;
    double worst;
} Thread;

static void *thread_main(void *arg) {
    Thread *t = arg;
    dsc_session *s;
    if (dsc_session_create(t->model, &s) != DSC_OK) {
        t->failures++;
        return NULL;
    }
    for (int round = 0; round < THREAD_ROUNDS; round++)
        for (int i = 0; i < t->ncases; i++) {
            const Case *c =
                &t->cases[(i + t->id) % t->ncases]; /* the threads take the lengths in different orders */
            double err;
            dsc_status st = run_case(s, c, &err);
            if (st != DSC_OK || !(err <= TOLERANCE)) {
                fprintf(stderr, "thread %d, S=%ld: %s %s (error %g)\n", t->id, c->s, dsc_status_str(st),
                        dsc_session_errmsg(s), err);
                t->failures++;
            }
            if (err > t->worst) t->worst = err;
        }
    dsc_session_destroy(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL WEIGHTS DATA S...\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *weights = argv[2], *data = argv[3];
    int ncases = argc - 4 < MAX_LENGTHS ? argc - 4 : MAX_LENGTHS, failures = 0;
    Case cases[MAX_LENGTHS] = {0};
    for (int i = 0; i < ncases; i++)
        if (!load_case(data, strtol(argv[4 + i], NULL, 10), &cases[i])) return 1;

    dsc_context_options copts = {.device = DSC_DEVICE_AUTO};
    const char *dev = getenv("DSC_DEVICE");
    for (int d = 0; dev && d < DSC_DEVICE_COUNT; d++)
        if (strcmp(dev, dsc_device_name((dsc_device)d)) == 0) copts.device = (dsc_device)d;
    dsc_context *ctx;
    dsc_status st = dsc_context_create(&copts, &ctx);
    if (st != DSC_OK) {
        fprintf(stderr, "dsc_context_create: %s\n", dsc_status_str(st));
        return 1;
    }
    dsc_model *model;
    dsc_model_options mopts = {.weights = strcmp(weights, "-") == 0 ? NULL : weights};
    double t0 = now_ms();
    st = dsc_model_load(ctx, model_path, &mopts, &model);
    if (st != DSC_OK) {
        fprintf(stderr, "dsc_model_load: %s\n%s\n", dsc_status_str(st), dsc_context_errmsg(ctx));
        dsc_context_destroy(ctx);
        return 1;
    }
    printf("dsc %s: model %s loaded on %s in %.1f ms\n", dsc_version(), dsc_model_name(model),
           dsc_device_name(dsc_model_device(model)), now_ms() - t0);

    /* one session: every length, checked and timed */
    dsc_session *s;
    if (dsc_session_create(model, &s) != DSC_OK) return 1;
    for (int i = 0; i < ncases; i++) {
        double err, ms[TIMED_RUNS];
        st = run_case(s, &cases[i], &err); /* the first run at a new length may grow the arena */
        for (int r = 0; st == DSC_OK && r < TIMED_RUNS; r++) {
            double t = now_ms();
            st = run_case(s, &cases[i], &err);
            ms[r] = now_ms() - t;
        }
        if (st != DSC_OK) {
            fprintf(stderr, "S=%ld: %s\n%s\n", cases[i].s, dsc_status_str(st), dsc_session_errmsg(s));
            failures++;
            continue;
        }
        qsort(ms, TIMED_RUNS, sizeof *ms, cmp_double);
        int ok = err <= TOLERANCE;
        failures += !ok;
        printf("%s S=%-4ld rel L2 error %.2e (tolerance %.0e)  latency median %.3f ms, min %.3f ms\n",
               ok ? "ok  " : "FAIL", cases[i].s, err, TOLERANCE, ms[TIMED_RUNS / 2], ms[0]);
    }
    dsc_stats stats;
    dsc_session_stats(s, &stats);
    printf("session: %llu runs, arena %zu bytes (peak %zu), grown %llu times\n",
           (unsigned long long)stats.runs, stats.arena_bytes, stats.peak_arena_bytes,
           (unsigned long long)stats.arena_grows);
    dsc_session_destroy(s);

    /* two sessions on two threads, one model */
    Thread th[2] = {{model, cases, ncases, 0, 0, 0}, {model, cases, ncases, 1, 0, 0}};
    pthread_t tid[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&tid[i], NULL, thread_main, &th[i]) != 0) return 1;
    for (int i = 0; i < 2; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < 2; i++) {
        printf("%s thread %d: %d runs, worst rel L2 error %.2e\n", th[i].failures ? "FAIL" : "ok  ", i,
               THREAD_ROUNDS * ncases, th[i].worst);
        failures += th[i].failures;
    }

    dsc_model_destroy(model);
    dsc_context_destroy(ctx);
    for (int i = 0; i < ncases; i++) {
        free(cases[i].in[0].data);
        free(cases[i].in[1].data);
        free(cases[i].want.data);
    }
    printf("%s\n", failures ? "FAILED" : "all results match");
    return failures ? 1 : 0;
}
