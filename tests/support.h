/* Small helpers shared by the test suites (included directly, like
 * randgraph.c: CMake builds each tests/unit/test_*.c on its own). */
#ifndef DSC_TESTS_SUPPORT_H
#define DSC_TESTS_SUPPORT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ir/ir.h"

/* Seconds on the monotonic clock. */
static inline double test_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An integer from the environment, or dflt when unset or empty. */
static inline long test_env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* The diagnostics as text (malloc'd; the caller frees). */
static inline char *test_diag_text(const Diag *d, bool show_source) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    diag_print(d, f, show_source);
    fclose(f);
    return buf;
}

/* The graph printed as DSG (malloc'd; the caller frees). */
static inline char *test_print_dsg(const Graph *g) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_print_dsg(g, f);
    fclose(f);
    return buf;
}

/* For Criterion suites: outside CI a missing tool (NVRTC, a C compiler, the
 * toolkit stub) skips the test; in CI (CI=true) it fails it: CI must exercise
 * these paths. */
#define SKIP_UNLESS_CI(...)                                                                                  \
    do {                                                                                                     \
        const char *ci_ = getenv("CI");                                                                      \
        if (ci_ && strcmp(ci_, "true") == 0) cr_assert_fail(__VA_ARGS__);                                    \
        cr_skip_test(__VA_ARGS__);                                                                           \
    } while (0)

/* A whole file (malloc'd, NUL-terminated; *len without the NUL), or NULL. */
static inline char *test_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0, got = 0;
    bool ok = true;
    do {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                ok = false;
                break;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    ok = ok && !ferror(f);
    fclose(f);
    if (!ok) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

#endif
