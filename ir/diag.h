/* Diagnostics: located errors and warnings, collected and printed together.
 *
 * The library never prints or exits on a user error; every stage reports into a
 * Diag and returns failure.  diag_print renders each message as
 *     file:line:col: error: message
 *         source line
 *         ^
 * (chibicc style).  After DIAG_MAX_ERRORS errors further ones are dropped and
 * diag_full() turns true so scanners and parsers can stop early. */
#ifndef DSC_IR_DIAG_H
#define DSC_IR_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum { DIAG_MAX_ERRORS = 50 };

/* A source location: 1-based line and column (bytes); line 0 means "no location". */
typedef struct Loc {
    const char *file;
    int line, col;
} Loc;

typedef enum { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } DiagLevel;

typedef struct Diag Diag;

Diag *diag_create(void);
void diag_destroy(Diag *d);
/* Registers the text of a file so messages about it can show the line. The
 * text must outlive the Diag (it is not copied). */
void diag_add_source(Diag *d, const char *file, const char *text, size_t len);
void diag_report(Diag *d, DiagLevel level, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* diag_error(d, loc, fmt, ...); the location may be a compound literal. */
#define diag_error(d, ...) diag_report((d), DIAG_ERROR, __VA_ARGS__)
#define diag_warning(d, ...) diag_report((d), DIAG_WARNING, __VA_ARGS__)
#define diag_note(d, ...) diag_report((d), DIAG_NOTE, __VA_ARGS__)
/* A location naming only a file (for errors about whole files). */
static inline Loc loc_file(const char *file) { return (Loc){file, 0, 0}; }

int diag_error_count(const Diag *d);
int diag_warning_count(const Diag *d);
bool diag_full(const Diag *d);
/* Number of messages and the i-th one's text (without location), for tests. */
int diag_count(const Diag *d);
const char *diag_message(const Diag *d, int i, DiagLevel *level, Loc *loc);
/* Prints all messages in report order; with `show_source` also the line and caret. */
void diag_print(const Diag *d, FILE *out, bool show_source);
/* Forget all messages (sources stay registered). */
void diag_clear(Diag *d);

#endif
