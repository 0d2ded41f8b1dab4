/* Builds rendered CUDA kernels for the CPU emulator (tests/cuda_emu/emu.h)
 * and launches them.  Included directly by a test (like tests/support.h).
 *
 * emu_compile writes one C++ file: emu.h, then each kernel's complete source
 * inside a namespace of its own (so the helpers every source carries do not
 * collide), then an entry per kernel that takes the launch's parameter array
 * -- the same array a cuLaunchKernel gets: params[i] points to the i-th
 * argument of the kernel ABI (docs/cuda.md) -- and calls the kernel.  The
 * host C++ compiler (`c++`, or $CXX) builds it into a shared object. */
#ifndef DSC_TESTS_CUDA_EMU_BUILD_H
#define DSC_TESTS_CUDA_EMU_BUILD_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cuda/render.h"

typedef struct {
    void *lib;
    int n;
    int (*launch)(void (*)(void **), void **, unsigned, unsigned, char *, size_t);
    void (**entry)(void **);
} EmuLib;

static const char *emu_ctype(DType t) {
    switch (t) {
    case DT_F32: return "float";
    case DT_F16:
    case DT_BF16: return "unsigned short";
    case DT_I8: return "signed char";
    case DT_I32: return "int";
    case DT_I64: return "long long";
    case DT_BOOL: return "unsigned char";
    default: return NULL;
    }
}

/* Compiles the kernels into DIR/TAG.so and loads it; false with the reason
 * (the compiler's output included) in err. */
static bool emu_compile(const CudaKernel *ks, int n, const char *dir, const char *tag, EmuLib *out, char *err,
                        size_t errlen) {
    memset(out, 0, sizeof *out);
    char src[1024], so[1024], log[1024], cmd[4096];
    snprintf(src, sizeof src, "%s/%s.cpp", dir, tag);
    snprintf(so, sizeof so, "%s/%s.so", dir, tag);
    snprintf(log, sizeof log, "%s/%s.log", dir, tag);
    FILE *f = fopen(src, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %s", src);
        return false;
    }
    for (int i = 0; i < n; i++) {
        fprintf(f, "namespace dsc_k%d {\n%s}\n", i, ks[i].source);
        fprintf(f, "extern \"C\" void dsc_emu_entry_%d(void **p) {\n    dsc_k%d::%s(", i, i, ks[i].name);
        for (int a = 0; a < ks[i].nargs; a++) {
            const CudaArg *arg = &ks[i].args[a];
            if (a) fputs(", ", f);
            if (arg->kind == CA_BUFFER)
                fprintf(f, "(%s *)*(void *const *)p[%d]", emu_ctype(arg->dtype), a);
            else if (arg->kind == CA_DIM)
                fprintf(f, "*(const long long *)p[%d]", a);
            else
                fprintf(f, "(long long *)*(void *const *)p[%d]", a);
        }
        fputs(");\n}\n", f);
    }
    if (fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s", src);
        return false;
    }
    const char *cxx = getenv("CXX");
    snprintf(cmd, sizeof cmd,
             "'%s' -std=c++17 -O1 -fPIC -shared -w -fno-strict-aliasing -include '%s/tests/cuda_emu/emu.h' "
             "-o '%s' '%s' >'%s' 2>&1",
             cxx && *cxx ? cxx : "c++", DSC_SOURCE_DIR, so, src, log);
    if (system(cmd) != 0) {
        FILE *lf = fopen(log, "r");
        size_t got = 0;
        char text[2048] = "";
        if (lf) {
            got = fread(text, 1, sizeof text - 1, lf);
            fclose(lf);
        }
        text[got] = 0;
        snprintf(err, errlen, "%s does not compile for the emulator:\n%s", src, text);
        return false;
    }
    out->lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!out->lib) {
        snprintf(err, errlen, "dlopen %s: %s", so, dlerror());
        return false;
    }
    void *sym = dlsym(out->lib, "dsc_emu_launch");
    memcpy(&out->launch, &sym, sizeof sym);
    out->entry = calloc((size_t)(n ? n : 1), sizeof *out->entry);
    out->n = n;
    for (int i = 0; i < n && sym; i++) {
        char name[64];
        snprintf(name, sizeof name, "dsc_emu_entry_%d", i);
        void *e = dlsym(out->lib, name);
        if (!e) sym = NULL;
        memcpy(&out->entry[i], &e, sizeof e);
    }
    if (!sym) {
        snprintf(err, errlen, "%s lacks the emulator's entry points", so);
        dlclose(out->lib);
        free(out->entry);
        memset(out, 0, sizeof *out);
        return false;
    }
    return true;
}

/* Runs kernel i on grid x block emulated threads; false with the reason in err. */
static bool emu_launch(const EmuLib *l, int i, unsigned grid, unsigned block, void **params, char *err,
                       size_t errlen) {
    return l->launch(l->entry[i], params, grid, block, err, errlen) == 0;
}

static void emu_close(EmuLib *l) {
    if (l->lib) {
        void *sym = dlsym(l->lib, "dsc_emu_release");
        void (*release)(void);
        memcpy(&release, &sym, sizeof sym);
        if (sym) release();
        dlclose(l->lib);
    }
    free(l->entry);
    memset(l, 0, sizeof *l);
}

#endif
