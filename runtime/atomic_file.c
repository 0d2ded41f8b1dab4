/* Atomic file writes (see atomic_file.h). */
#include "atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *af_open(AtomicFile *af, const char *path, Diag *d) {
    *af = (AtomicFile){0};
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* a device or pipe: renaming over it would replace it */
        af->f = fopen(path, "wb");
        if (!af->f) diag_error(d, loc_file(path), "cannot open for writing: %s", strerror(errno));
        af->path = af->f ? strdup(path) : NULL;
        return af->f;
    }
    af->path = strdup(path);
    if (!af->path || asprintf(&af->tmp, "%s.tmp.XXXXXX", path) < 0) {
        free(af->path);
        af->path = NULL;
        af->tmp = NULL;
        diag_error(d, (Loc){path, 0, 0}, "out of memory");
        return NULL;
    }
    int fd = mkstemp(af->tmp);
    /* mkstemp creates mode 0600; give the file the mode a plain create would */
    mode_t mask = umask(0);
    umask(mask);
    if (fd >= 0) (void)fchmod(fd, 0666 & ~mask);
    if (fd < 0 || !(af->f = fdopen(fd, "wb"))) {
        diag_error(d, (Loc){path, 0, 0}, "cannot create: %s", strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(af->tmp);
        }
        free(af->path);
        free(af->tmp);
        *af = (AtomicFile){0};
        return NULL;
    }
    return af->f;
}

void af_abort(AtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->path);
    free(af->tmp);
    *af = (AtomicFile){0};
}

bool af_commit(AtomicFile *af, Diag *d) {
    bool direct = !af->tmp;
    bool ok = fflush(af->f) == 0 && !ferror(af->f) && (direct || fsync(fileno(af->f)) == 0);
    int err = errno;
    ok = (fclose(af->f) == 0) && ok;
    af->f = NULL;
    if (direct) {
        if (!ok) diag_error(d, loc_file(af->path), "cannot write: %s", strerror(err));
        free(af->path);
        *af = (AtomicFile){0};
        return ok;
    }
    if (ok && rename(af->tmp, af->path) != 0) {
        err = errno;
        ok = false;
    }
    if (!ok) {
        diag_error(d, (Loc){af->path, 0, 0}, "cannot write: %s", strerror(err));
        af_abort(af);
        return false;
    }
    free(af->path);
    free(af->tmp);
    *af = (AtomicFile){0};
    return true;
}
