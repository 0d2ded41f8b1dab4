/* Diagnostics collection and rendering.  Messages are copied into malloc'd
 * storage owned by the Diag; sources are borrowed. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"

typedef struct {
    DiagLevel level;
    Loc loc;
    char *file; /* owned copy of loc.file */
    char *msg;
} Message;

typedef struct {
    const char *file, *text;
    size_t len;
} Source;

struct Diag {
    Message *msgs;
    int n, cap;
    int errors, warnings;
    bool overflowed;
    Source *srcs;
    int nsrcs, srccap;
};

Diag *diag_create(void) {
    Diag *d = calloc(1, sizeof *d);
    DSC_ASSERT(d && "out of memory");
    return d;
}

void diag_clear(Diag *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->msgs[i].msg);
        free(d->msgs[i].file);
    }
    d->n = d->errors = d->warnings = 0;
    d->overflowed = false;
}

void diag_destroy(Diag *d) {
    if (!d) return;
    diag_clear(d);
    free(d->msgs);
    free(d->srcs);
    free(d);
}

void diag_add_source(Diag *d, const char *file, const char *text, size_t len) {
    if (d->nsrcs == d->srccap) {
        d->srccap = d->srccap ? d->srccap * 2 : 4;
        d->srcs = realloc(d->srcs, sizeof(Source) * (size_t)d->srccap);
        DSC_ASSERT(d->srcs && "out of memory");
    }
    d->srcs[d->nsrcs++] = (Source){file, text, len};
}

bool diag_full(const Diag *d) { return d->errors >= DIAG_MAX_ERRORS; }

void diag_report(Diag *d, DiagLevel level, Loc loc, const char *fmt, ...) {
    if (level == DIAG_ERROR && d->errors >= DIAG_MAX_ERRORS) {
        d->overflowed = true;
        return;
    }
    if (d->n >= 4 * DIAG_MAX_ERRORS) return; /* warnings and notes are capped too */
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    DSC_ASSERT(msg && "out of memory");
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->msgs = realloc(d->msgs, sizeof(Message) * (size_t)d->cap);
        DSC_ASSERT(d->msgs && "out of memory");
    }
    char *file = loc.file ? strdup(loc.file) : NULL;
    d->msgs[d->n++] = (Message){level, loc, file, msg};
    if (level == DIAG_ERROR) d->errors++;
    if (level == DIAG_WARNING) d->warnings++;
}

int diag_error_count(const Diag *d) { return d->errors; }
int diag_warning_count(const Diag *d) { return d->warnings; }
int diag_count(const Diag *d) { return d->n; }

const char *diag_message(const Diag *d, int i, DiagLevel *level, Loc *loc) {
    if (i < 0 || i >= d->n) return NULL;
    if (level) *level = d->msgs[i].level;
    if (loc) {
        *loc = d->msgs[i].loc;
        loc->file = d->msgs[i].file; /* the Diag's own copy, valid as long as the Diag */
    }
    return d->msgs[i].msg;
}

static const Source *find_source(const Diag *d, const char *file) {
    if (!file) return NULL;
    for (int i = 0; i < d->nsrcs; i++)
        if (d->srcs[i].file && strcmp(d->srcs[i].file, file) == 0) return &d->srcs[i];
    return NULL;
}

/* Prints the source line of `loc` and a caret under its column.  Long lines are
 * shown as a window around the column; control bytes are shown as '?'. */
static void print_line(const Source *s, Loc loc, FILE *out) {
    const char *p = s->text, *end = s->text + s->len;
    for (int line = 1; line < loc.line && p < end; p++)
        if (*p == '\n') line++;
    if (p > end) return;
    const char *eol = p;
    while (eol < end && *eol != '\n') eol++;
    size_t len = (size_t)(eol - p), col = loc.col > 0 ? (size_t)loc.col - 1 : 0;
    if (col > len) col = len;
    enum { WINDOW = 100 };
    size_t from = col > WINDOW ? col - WINDOW : 0, to = len - col > WINDOW ? col + WINDOW : len;
    fputs("    ", out);
    if (from) fputs("...", out);
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)p[i];
        fputc(c == '\t' || (c >= 32 && c < 127) || c >= 128 ? c : '?', out);
    }
    if (to < len) fputs("...", out);
    fputs("\n    ", out);
    if (from) fputs("   ", out);
    for (size_t i = from; i < col; i++) fputc(p[i] == '\t' ? '\t' : ' ', out);
    fputs("^\n", out);
}

void diag_print(const Diag *d, FILE *out, bool show_source) {
    static const char *names[] = {"error", "warning", "note"};
    for (int i = 0; i < d->n; i++) {
        const Message *m = &d->msgs[i];
        if (m->file && m->loc.line > 0)
            fprintf(out, "%s:%d:%d: ", m->file, m->loc.line, m->loc.col);
        else if (m->file)
            fprintf(out, "%s: ", m->file);
        fprintf(out, "%s: %s\n", names[m->level], m->msg);
        const Source *s = show_source && m->loc.line > 0 ? find_source(d, m->file) : NULL;
        if (s) print_line(s, m->loc, out);
    }
    if (d->overflowed)
        fprintf(out, "error: too many errors (%d shown), stopping\n", DIAG_MAX_ERRORS);
}
