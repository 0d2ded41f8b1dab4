/* libFuzzer target for the frontend: any byte string must parse or be
 * rejected with diagnostics, without crash, leak or hang.  Accepted models must
 * also round-trip: printing, reparsing and printing again gives the same text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"

static char *print(const Graph *g, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    ir_print_dsg(g, f);
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    Graph *g = fe_compile_source(a, d, "fuzz.dsg", (const char *)data, size);
    if (g) {
        size_t n1, n2;
        char *p1 = print(g, &n1);
        /* the Diag borrows the source text: keep a copy alive in the arena */
        const char *src2 = arena_strndup(a, p1, n1);
        Graph *g2 = fe_compile_source(a, d, "printed.dsg", src2, n1);
        if (!g2) {
            fprintf(stderr, "printed graph does not parse:\n%s\n", p1);
            diag_print(d, stderr, true);
            abort();
        }
        char *p2 = print(g2, &n2);
        if (n1 != n2 || memcmp(p1, p2, n1) != 0) {
            fprintf(stderr, "round trip differs:\n%s\n----\n%s\n", p1, p2);
            abort();
        }
        free(p1);
        free(p2);
    }
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        diag_print(d, devnull, true);
        fclose(devnull);
    }
    diag_destroy(d);
    arena_destroy(a);
    return 0;
}
