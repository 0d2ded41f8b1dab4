/* Writing a file so that readers never see it half-written: the data goes to
 * a temporary file in the same directory, which is renamed over the target
 * only when everything was written and flushed.  On any failure the temporary
 * file is removed and the target is left as it was.  A target that exists and
 * is not a regular file (/dev/null, /dev/stdout, a pipe) is written directly. */
#ifndef DSC_RUNTIME_ATOMIC_FILE_H
#define DSC_RUNTIME_ATOMIC_FILE_H

#include <stdbool.h>
#include <stdio.h>

#include "../ir/diag.h"

typedef struct {
    FILE *f;
    char *path, *tmp; /* tmp NULL: writing the target directly */
} AtomicFile;

/* Opens a temporary file beside `path`; reports and returns NULL on failure. */
FILE *af_open(AtomicFile *af, const char *path, Diag *d);
/* Flushes, closes and renames into place; reports and cleans up on failure. */
bool af_commit(AtomicFile *af, Diag *d);
/* Closes and removes the temporary file. */
void af_abort(AtomicFile *af);

#endif
