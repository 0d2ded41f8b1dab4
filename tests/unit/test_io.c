/* Tests of the weights and tensor file formats: runtime/safetensors.c and
 * runtime/npy.c.
 *
 * Three kinds of evidence:
 *   - round trips through our own writers for every dtype, scalars, zero-size
 *     and rank-8 shapes, metadata, and byte-for-byte comparison of npy_write's
 *     output with the files numpy itself writes;
 *   - files written by other programs (tests/data/npy by numpy,
 *     tests/data/safetensors by a stdlib script and by the reference
 *     `safetensors` package; see tests/data/make_io_fixtures.py) read with the
 *     right dtype, shape and values;
 *   - refusals: every file of tests/data/corrupt must fail with a message that
 *     contains the key phrase listed in its MANIFEST.tsv, every proper prefix
 *     of a valid file must fail, and failed writes leave nothing behind. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/npy.h"
#include "runtime/safetensors.h"

#define SRC DSC_SOURCE_DIR "/tests/data"
#define TMP DSC_BINARY_DIR "/test_io_tmp"

static const float FLOATS[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};

/* ---- helpers ------------------------------------------------------------- */

static void make_tmp(void) {
    if (mkdir(TMP, 0777) != 0 && errno != EEXIST) cr_assert_fail("mkdir %s: %s", TMP, strerror(errno));
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* True if some error message contains `phrase` (case-insensitive). */
static bool has_error(const Diag *d, const char *phrase) {
    for (int i = 0; i < diag_count(d); i++) {
        DiagLevel lv;
        Loc loc;
        const char *m = diag_message(d, i, &lv, &loc);
        if (lv == DIAG_ERROR && strcasestr(m, phrase)) return true;
    }
    return false;
}

static const char *first_error(const Diag *d) {
    DiagLevel lv;
    Loc loc;
    return diag_count(d) ? diag_message(d, 0, &lv, &loc) : "(no message)";
}

/* Fills t (an owning tensor) with a deterministic pattern for its dtype. */
static void fill(Tensor *t) {
    int64_t n = rt_numel(t->rank, t->shape);
    for (int64_t i = 0; i < n; i++)
        rt_set(t, i, (double)((i * 7) % 11) - 5.0);
}

static bool same_tensor(const Tensor *a, const Tensor *b) {
    if (a->dtype != b->dtype || a->rank != b->rank || a->nbytes != b->nbytes) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

static int count_tmp_leftovers(const char *dir) {
    DIR *dd = opendir(dir);
    int n = 0;
    for (struct dirent *e; dd && (e = readdir(dd));)
        if (strstr(e->d_name, ".tmp.")) n++;
    if (dd) closedir(dd);
    return n;
}

typedef struct {
    int rank;
    int64_t shape[IR_MAX_RANK];
} Shape;

static const Shape SHAPES[] = {
    {2, {2, 3}}, {0, {0}}, {2, {0, 3}}, {1, {1}}, {1, {5}}, {8, {1, 2, 1, 2, 1, 1, 3, 1}},
};
enum { NSHAPES = sizeof SHAPES / sizeof SHAPES[0] };

/* ---- npy: round trips ---------------------------------------------------- */

Test(npy, round_trip_every_dtype_and_shape) {
    make_tmp();
    for (int dt = 0; dt < DT_COUNT; dt++) {
        for (int s = 0; s < NSHAPES; s++) {
            Tensor *t = rt_tensor_new((DType)dt, SHAPES[s].rank, SHAPES[s].shape);
            cr_assert(t);
            fill(t);
            char path[512];
            snprintf(path, sizeof path, TMP "/rt_%s_%d.npy", dtype_name((DType)dt), s);
            Diag *d = diag_create();
            cr_assert(npy_write(path, t, d), "%s: %s", path, first_error(d));
            Tensor *u = npy_read(path, d);
            cr_assert(u, "%s: %s", path, first_error(d));
            cr_assert(same_tensor(t, u), "%s differs after a round trip", path);
            cr_assert(u->owned);
            /* The data starts at a multiple of 64 (numpy's alignment). */
            size_t len;
            char *buf = slurp(path, &len);
            cr_assert_eq((len - u->nbytes) % 64, 0);
            cr_assert_eq(buf[6], 1, "version 1.0 expected");
            Tensor *v = npy_read_mem(buf, len, path, d);
            cr_assert(v && same_tensor(t, v));
            cr_assert_eq(diag_error_count(d), 0);
            free(buf);
            rt_tensor_free(v);
            rt_tensor_free(u);
            rt_tensor_free(t);
            diag_destroy(d);
        }
    }
}

/* npy_write must produce exactly the bytes numpy's np.save produces. */
Test(npy, write_matches_numpy_bytes) {
    make_tmp();
    const char *names[] = {"f32", "f16", "bf16", "i8", "i32", "i64", "bool", "scalar", "empty"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char ref[512], out[512];
        snprintf(ref, sizeof ref, SRC "/npy/%s_v1.npy", names[i]);
        snprintf(out, sizeof out, TMP "/same_%s.npy", names[i]);
        Diag *d = diag_create();
        Tensor *t = npy_read(ref, d);
        cr_assert(t, "%s: %s", ref, first_error(d));
        cr_assert(npy_write(out, t, d));
        size_t la, lb;
        char *a = slurp(ref, &la), *b = slurp(out, &lb);
        cr_assert(la == lb && memcmp(a, b, la) == 0, "%s: npy_write output differs from numpy's", names[i]);
        free(a);
        free(b);
        rt_tensor_free(t);
        diag_destroy(d);
    }
}

/* ---- npy: files written by numpy ----------------------------------------- */

static void check_floats(const Tensor *t, DType dt) {
    cr_assert_eq(t->dtype, dt);
    cr_assert_eq(t->rank, 2);
    cr_assert(t->shape[0] == 2 && t->shape[1] == 3);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(rt_get(t, i), FLOATS[i], "element %d", i);
}

static Tensor *read_fixture(const char *file) {
    char path[512];
    snprintf(path, sizeof path, SRC "/npy/%s", file);
    Diag *d = diag_create();
    Tensor *t = npy_read(path, d);
    cr_assert(t, "%s: %s", path, first_error(d));
    diag_destroy(d);
    return t;
}

Test(npy, reads_numpy_files) {
    const char *floats[][2] = {{"f32_v1.npy", "f32"}, {"f32_v2.npy", "f32"},   {"f32_v3.npy", "f32"},
                               {"f16_v1.npy", "f16"}, {"bf16_v1.npy", "bf16"}, {"bf16_v3.npy", "bf16"}};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        Tensor *t = read_fixture(floats[i][0]);
        DType dt;
        cr_assert(dtype_from_name(floats[i][1], &dt));
        check_floats(t, dt);
        rt_tensor_free(t);
    }
    Tensor *t = read_fixture("i8_v1.npy");
    cr_assert(t->dtype == DT_I8 && t->rank == 1 && t->shape[0] == 6);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(rt_get(t, i), i - 3);
    rt_tensor_free(t);

    t = read_fixture("i32_v1.npy");
    cr_assert(t->dtype == DT_I32 && t->rank == 3 && t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 4);
    for (int i = 0; i < 24; i++)
        cr_assert_eq(rt_get(t, i), i - 12);
    rt_tensor_free(t);

    const char *i64s[] = {"i64_v1.npy", "i64_v3.npy"};
    for (int k = 0; k < 2; k++) {
        t = read_fixture(i64s[k]);
        cr_assert(t->dtype == DT_I64 && t->rank == 1 && t->shape[0] == 3);
        const int64_t *v = t->data;
        cr_assert(v[0] == -(INT64_C(1) << 40) && v[1] == 0 && v[2] == (INT64_C(1) << 40) + 1);
        rt_tensor_free(t);
    }

    const char *bools[] = {"bool_v1.npy", "bool_v3.npy"};
    for (int k = 0; k < 2; k++) {
        t = read_fixture(bools[k]);
        cr_assert(t->dtype == DT_BOOL && t->rank == 2 && t->shape[0] == 2 && t->shape[1] == 2);
        const unsigned char *b = t->data;
        cr_assert(b[0] == 1 && b[1] == 0 && b[2] == 1 && b[3] == 1);
        rt_tensor_free(t);
    }

    t = read_fixture("scalar_v1.npy");
    cr_assert(t->dtype == DT_F32 && t->rank == 0 && t->nbytes == 4 && rt_get(t, 0) == 3.25);
    rt_tensor_free(t);

    t = read_fixture("empty_v1.npy");
    cr_assert(t->dtype == DT_F32 && t->rank == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->nbytes == 0);
    rt_tensor_free(t);
}

Test(npy, refuses_numpy_files_it_does_not_support) {
    const char *cases[][2] = {
        {"reject_big_endian.npy", "big-endian data is not supported (descr '>f4'); convert with "
                                  "arr.astype('<f4')"},
        {"reject_fortran.npy", "fortran"},
        {"reject_f8.npy", "unsupported dtype: descr '<f8'"},
        {"reject_structured.npy", "structured"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, SRC "/npy/%s", cases[i][0]);
        Diag *d = diag_create();
        cr_assert_null(npy_read(path, d), "%s was accepted", path);
        cr_assert(has_error(d, cases[i][1]), "%s: got '%s'", path, first_error(d));
        DiagLevel lv;
        Loc loc;
        diag_message(d, 0, &lv, &loc);
        cr_assert_str_eq(loc.file, path, "the location names the file");
        diag_destroy(d);
    }
}

/* ---- npy: header forms --------------------------------------------------- */

/* A .npy buffer with the given dict text (padded, '\n') and data. */
static size_t make_npy(unsigned char *out, int major, const char *dict, const void *data, size_t nbytes) {
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t hlen = dl + 1;
    hlen += (64 - (pre + hlen) % 64) % 64;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    out[8] = (unsigned char)(hlen & 0xff);
    out[9] = (unsigned char)(hlen >> 8);
    if (pre == 12) out[10] = out[11] = 0;
    memcpy(out + pre, dict, dl);
    memset(out + pre + dl, ' ', hlen - dl - 1);
    out[pre + hlen - 1] = '\n';
    memcpy(out + pre + hlen, data, nbytes);
    return pre + hlen + nbytes;
}

Test(npy, header_variants) {
    const int32_t v[6] = {1, 2, 3, 4, 5, 6};
    struct {
        int major;
        const char *dict;
        int rank;
        int64_t shape[3];
    } cases[] = {
        {1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", 2, {2, 3}},
        {1, "{\"shape\": (6,), \"descr\": \"<i4\", \"fortran_order\": False}", 1, {6}},
        {1, "{ 'fortran_order' : False , 'shape' : ( 3 , 2 , ) , 'descr' : '=i4' }", 2, {3, 2}},
        {1, "{'descr': '|i4', 'fortran_order': False, 'shape': (6,)}", 1, {6}},
        {1, "{'descr': 'i4', 'fortran_order': False, 'shape': (1, 6)}", 2, {1, 6}},
        {1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2L, 3L), }", 2, {2, 3}}, /* py2 */
        {2, "{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", 1, {6}},
        {3, "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2, 3), }", 3, {1, 2, 3}},
        {1, "{'descr': '<i4',\n 'fortran_order': False,\n 'shape': (6,)}", 1, {6}},
        /* Fortran order is accepted where it is the same layout as C order. */
        {1, "{'descr': '<i4', 'fortran_order': True, 'shape': (6,), }", 1, {6}},
        {1, "{'descr': '<i4', 'fortran_order': True, 'shape': (1, 6, 1), }", 3, {1, 6, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char buf[512];
        size_t len = make_npy(buf, cases[i].major, cases[i].dict, v, sizeof v);
        Diag *d = diag_create();
        Tensor *t = npy_read_mem(buf, len, "mem.npy", d);
        cr_assert(t, "case %zu (%s): %s", i, cases[i].dict, first_error(d));
        cr_assert_eq(t->dtype, DT_I32);
        cr_assert_eq(t->rank, cases[i].rank, "case %zu", i);
        for (int k = 0; k < t->rank; k++)
            cr_assert_eq(t->shape[k], cases[i].shape[k]);
        cr_assert(memcmp(t->data, v, sizeof v) == 0);
        rt_tensor_free(t);
        diag_destroy(d);
    }
    /* Python 3 headers (version 3.0) may not use the 2L form. */
    unsigned char buf[512];
    size_t len = make_npy(buf, 3, "{'descr': '<i4', 'fortran_order': False, 'shape': (6L,)}", v, sizeof v);
    Diag *d = diag_create();
    cr_assert_null(npy_read_mem(buf, len, "mem.npy", d));
    cr_assert(has_error(d, "not an integer"), "%s", first_error(d));
    diag_destroy(d);
}

Test(npy, one_byte_types_ignore_byte_order_and_bool_is_normalised) {
    const unsigned char v[4] = {0, 1, 2, 255};
    unsigned char buf[256];
    size_t len = make_npy(buf, 1, "{'descr': '>b1', 'fortran_order': False, 'shape': (4,)}", v, 4);
    Diag *d = diag_create();
    Tensor *t = npy_read_mem(buf, len, "b.npy", d);
    cr_assert(t, "%s", first_error(d));
    const unsigned char *b = t->data;
    cr_assert(t->dtype == DT_BOOL && b[0] == 0 && b[1] == 1 && b[2] == 1 && b[3] == 1);
    rt_tensor_free(t);
    len = make_npy(buf, 1, "{'descr': '>i1', 'fortran_order': False, 'shape': (4,)}", v, 4);
    t = npy_read_mem(buf, len, "i.npy", d);
    cr_assert(t && t->dtype == DT_I8 && rt_get(t, 3) == -1);
    rt_tensor_free(t);
    diag_destroy(d);
}

/* Every proper prefix of a valid file is refused; nothing crashes. */
Test(npy, every_prefix_is_refused) {
    size_t len;
    char *buf = slurp(SRC "/npy/i32_v1.npy", &len);
    cr_assert(buf);
    for (size_t n = 0; n < len; n++) {
        char *copy = malloc(n ? n : 1); /* exact size, so ASan sees over-reads */
        memcpy(copy, buf, n);
        Diag *d = diag_create();
        Tensor *t = npy_read_mem(copy, n, "prefix.npy", d);
        cr_assert_null(t, "prefix of %zu bytes accepted", n);
        cr_assert_eq(diag_error_count(d), 1, "prefix of %zu bytes: one error expected", n);
        diag_destroy(d);
        free(copy);
    }
    free(buf);
}

/* ---- npy: writer errors -------------------------------------------------- */

Test(npy, failed_writes_leave_nothing_behind) {
    make_tmp();
    const char *path = TMP "/keep.npy";
    int64_t shape[1] = {3};
    Tensor *t = rt_tensor_new(DT_F32, 1, shape);
    fill(t);
    Diag *d = diag_create();
    cr_assert(npy_write(path, t, d));
    size_t before_len;
    char *before = slurp(path, &before_len);

    Tensor bad = *t;
    bad.nbytes = 8; /* does not match f32[3] */
    cr_assert_not(npy_write(path, &bad, d));
    cr_assert(has_error(d, "nbytes"), "%s", first_error(d));
    bad = *t;
    bad.shape[0] = -1;
    cr_assert_not(npy_write(path, &bad, d));

    size_t after_len;
    char *after = slurp(path, &after_len);
    cr_assert(before_len == after_len && memcmp(before, after, before_len) == 0,
              "the existing file was changed by a failed write");
    cr_assert_eq(count_tmp_leftovers(TMP), 0);

    diag_clear(d);
    cr_assert_not(npy_write(TMP "/no/such/dir/x.npy", t, d));
    cr_assert_eq(diag_error_count(d), 1);
    free(before);
    free(after);
    rt_tensor_free(t);
    diag_destroy(d);
}

Test(npy, missing_file_and_directory) {
    Diag *d = diag_create();
    cr_assert_null(npy_read(TMP "/does-not-exist.npy", d));
    cr_assert(has_error(d, "cannot open"));
    diag_clear(d);
    cr_assert_null(npy_read(SRC, d));
    cr_assert(has_error(d, "not a regular file"));
    diag_destroy(d);
}

/* ---- safetensors: round trips -------------------------------------------- */

static void check_same_views(const SafeTensors *st, int n, const char *const *names, Tensor *const *ts) {
    cr_assert_eq(st_count(st), n);
    for (int i = 0; i < n; i++) {
        Tensor v;
        cr_assert(st_get(st, names[i], &v), "missing %s", names[i]);
        cr_assert(same_tensor(&v, ts[i]), "%s differs", names[i]);
        cr_assert_not(v.owned);
        cr_assert_eq((uintptr_t)v.data % (uintptr_t)dtype_size(v.dtype), 0, "%s unaligned", names[i]);
    }
    for (int i = 1; i < n; i++)
        cr_assert(strcmp(st_name(st, i - 1), st_name(st, i)) < 0);
}

Test(safetensors, round_trip_every_dtype_and_shape) {
    make_tmp();
    enum { N = DT_COUNT * NSHAPES };
    Tensor *ts[N];
    char namebuf[N][32];
    const char *names[N];
    int n = 0;
    /* Odd-sized tensors of small types interleaved with larger ones by name,
     * so the writer's alignment ordering matters. */
    for (int s = 0; s < NSHAPES; s++) {
        for (int dt = 0; dt < DT_COUNT; dt++) {
            ts[n] = rt_tensor_new((DType)dt, SHAPES[s].rank, SHAPES[s].shape);
            fill(ts[n]);
            snprintf(namebuf[n], sizeof namebuf[n], "layer%d.%s", s, dtype_name((DType)dt));
            names[n] = namebuf[n];
            n++;
        }
    }
    const char *keys[] = {"format", "quote\"and\\slash", "ctl\n\t"};
    const char *vals[] = {"pt", "v\"\\", "\x01 é"};
    const char *path = TMP "/all.safetensors";
    Diag *d = diag_create();
    cr_assert(st_write(path, n, names, (const Tensor *const *)ts, 3, keys, vals, d), "%s", first_error(d));
    SafeTensors *st = st_open(path, d);
    cr_assert(st, "%s", first_error(d));
    check_same_views(st, n, names, ts);
    cr_assert_eq(st_metadata_count(st), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(st_metadata(st, keys[i]), vals[i]);
    cr_assert_null(st_metadata(st, "nope"));
    Tensor v;
    cr_assert_not(st_get(st, "nope", &v));
    cr_assert_not(st_get_index(st, n, &v));
    cr_assert_null(st_name(st, -1));
    st_close(st);

    /* The memory path gives the same answers; the header is padded to 8. */
    size_t len;
    char *buf = slurp(path, &len);
    uint64_t hlen;
    memcpy(&hlen, buf, 8);
    cr_assert_eq(hlen % 8, 0);
    cr_assert_eq(buf[8 + hlen - 1] == ' ' || buf[8 + hlen - 1] == '}', 1);
    st = st_open_mem(buf, len, "mem", d);
    cr_assert(st, "%s", first_error(d));
    check_same_views(st, n, names, ts);
    st_close(st);
    free(buf);
    cr_assert_eq(diag_error_count(d), 0);
    for (int i = 0; i < n; i++)
        rt_tensor_free(ts[i]);
    diag_destroy(d);
}

Test(safetensors, empty_file_round_trip) {
    make_tmp();
    const char *path = TMP "/none.safetensors";
    Diag *d = diag_create();
    cr_assert(st_write(path, 0, NULL, NULL, 0, NULL, NULL, d));
    SafeTensors *st = st_open(path, d);
    cr_assert(st, "%s", first_error(d));
    cr_assert_eq(st_count(st), 0);
    cr_assert_eq(st_metadata_count(st), 0);
    st_close(st);
    diag_destroy(d);
}

Test(safetensors, writer_refuses_bad_input) {
    make_tmp();
    const char *path = TMP "/bad.safetensors";
    unlink(path);
    int64_t shape[1] = {2};
    Tensor *t = rt_tensor_new(DT_F32, 1, shape);
    const Tensor *ts[2] = {t, t};
    Diag *d = diag_create();
    const char *dup[2] = {"a", "a"};
    cr_assert_not(st_write(path, 2, dup, ts, 0, NULL, NULL, d));
    cr_assert(has_error(d, "duplicate tensor name 'a'"), "%s", first_error(d));
    const char *meta[1] = {"__metadata__"};
    cr_assert_not(st_write(path, 1, meta, ts, 0, NULL, NULL, d));
    const char *empty[1] = {""};
    cr_assert_not(st_write(path, 1, empty, ts, 0, NULL, NULL, d));
    Tensor bad = *t;
    bad.nbytes = 4;
    const Tensor *bs[1] = {&bad};
    const char *one[1] = {"x"};
    cr_assert_not(st_write(path, 1, one, bs, 0, NULL, NULL, d));
    cr_assert(has_error(d, "nbytes"));
    const char *k[2] = {"k", "k"}, *v[2] = {"1", "2"};
    cr_assert_not(st_write(path, 1, one, ts, 2, k, v, d));
    cr_assert(has_error(d, "duplicate metadata key 'k'"));
    struct stat sb;
    cr_assert_neq(stat(path, &sb), 0, "a failed write left a file");
    cr_assert_eq(count_tmp_leftovers(TMP), 0);
    cr_assert_not(st_write(TMP "/no/such/dir/x.safetensors", 1, one, ts, 0, NULL, NULL, d));
    rt_tensor_free(t);
    diag_destroy(d);
}

Test(safetensors, missing_file_and_directory) {
    Diag *d = diag_create();
    cr_assert_null(st_open(TMP "/does-not-exist.safetensors", d));
    cr_assert(has_error(d, "cannot open"));
    diag_clear(d);
    cr_assert_null(st_open(SRC, d));
    cr_assert(has_error(d, "not a regular file"));
    diag_destroy(d);
}

/* ---- safetensors: files written by others -------------------------------- */

static void check_fixture(const char *file, bool has_bf16, const char *format) {
    char path[512];
    snprintf(path, sizeof path, SRC "/safetensors/%s", file);
    Diag *d = diag_create();
    SafeTensors *st = st_open(path, d);
    cr_assert(st, "%s: %s", path, first_error(d));
    cr_assert_eq(st_count(st), has_bf16 ? 9 : 8);
    cr_assert_str_eq(st_metadata(st, "format"), format);
    Tensor v;
    const char *fl[] = {"w.f32", "w.f16", "w.bf16"};
    DType fdt[] = {DT_F32, DT_F16, DT_BF16};
    for (int i = 0; i < (has_bf16 ? 3 : 2); i++) {
        cr_assert(st_get(st, fl[i], &v), "%s", fl[i]);
        check_floats(&v, fdt[i]);
    }
    cr_assert(st_get(st, "i8", &v) && v.dtype == DT_I8 && v.rank == 1 && v.shape[0] == 6);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(rt_get(&v, i), i - 3);
    cr_assert(st_get(st, "i32", &v) && v.dtype == DT_I32 && v.rank == 3);
    cr_assert_eq((uintptr_t)v.data % 4, 0);
    for (int i = 0; i < 24; i++)
        cr_assert_eq(((const int32_t *)v.data)[i], i - 12);
    cr_assert(st_get(st, "i64", &v) && v.dtype == DT_I64 && v.shape[0] == 3);
    cr_assert_eq((uintptr_t)v.data % 8, 0);
    cr_assert_eq(((const int64_t *)v.data)[0], -(INT64_C(1) << 40));
    cr_assert_eq(((const int64_t *)v.data)[2], (INT64_C(1) << 40) + 1);
    cr_assert(st_get(st, "mask", &v) && v.dtype == DT_BOOL && v.rank == 2);
    const unsigned char *b = v.data;
    cr_assert(b[0] == 1 && b[1] == 0 && b[2] == 1 && b[3] == 1);
    cr_assert(st_get(st, "scalar", &v) && v.rank == 0 && v.nbytes == 4 && rt_get(&v, 0) == 3.25);
    cr_assert(st_get(st, "empty", &v) && v.rank == 2 && v.shape[0] == 0 && v.shape[1] == 3 && v.nbytes == 0);
    st_close(st);
    diag_destroy(d);
}

Test(safetensors, reads_stdlib_written_file_with_unaligned_tensors) {
    check_fixture("small.safetensors", true, "pt");
}

Test(safetensors, reads_reference_implementation_file) {
    check_fixture("hf_reference.safetensors", false, "np");
}

Test(safetensors, every_prefix_and_unaligned_buffer) {
    size_t len;
    char *buf = slurp(SRC "/safetensors/small.safetensors", &len);
    cr_assert(buf);
    for (size_t n = 0; n < len; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, buf, n);
        Diag *d = diag_create();
        SafeTensors *st = st_open_mem(copy, n, "prefix", d);
        cr_assert_null(st, "prefix of %zu bytes accepted", n);
        cr_assert_eq(diag_error_count(d), 1, "prefix of %zu bytes", n);
        diag_destroy(d);
        free(copy);
    }
    /* The whole file at an odd address: every view is still aligned. */
    char *odd = malloc(len + 1);
    memcpy(odd + 1, buf, len);
    Diag *d = diag_create();
    SafeTensors *st = st_open_mem(odd + 1, len, "odd", d);
    cr_assert(st, "%s", first_error(d));
    for (int i = 0; i < st_count(st); i++) {
        Tensor v;
        cr_assert(st_get_index(st, i, &v));
        cr_assert_eq((uintptr_t)v.data % (uintptr_t)dtype_size(v.dtype), 0);
    }
    st_close(st);
    diag_destroy(d);
    free(odd);
    free(buf);
}

/* ---- the corrupt corpus -------------------------------------------------- */

Test(corrupt, every_file_is_refused_with_the_expected_message) {
    FILE *m = fopen(SRC "/corrupt/MANIFEST.tsv", "r");
    cr_assert(m, "MANIFEST.tsv missing");
    char line[1024];
    int listed = 0;
    while (fgets(line, sizeof line, m)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        cr_assert(tab, "bad manifest line: %s", line);
        *tab = '\0';
        const char *file = line, *phrase = tab + 1;
        char path[1200];
        snprintf(path, sizeof path, SRC "/corrupt/%s", file);
        Diag *d = diag_create();
        bool is_npy = strstr(file, ".npy") != NULL;
        if (is_npy) {
            Tensor *t = npy_read(path, d);
            cr_expect_null(t, "%s was accepted", file);
            rt_tensor_free(t);
        } else {
            SafeTensors *st = st_open(path, d);
            cr_expect_null(st, "%s was accepted", file);
            st_close(st);
        }
        cr_expect(has_error(d, phrase), "%s: expected '%s', got '%s'", file, phrase, first_error(d));
        DiagLevel lv;
        Loc loc;
        if (diag_count(d)) {
            diag_message(d, 0, &lv, &loc);
            cr_expect_str_eq(loc.file, path);
        }
        /* The memory path gives the same first message. */
        size_t len;
        char *buf = slurp(path, &len);
        char *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        Diag *d2 = diag_create();
        if (is_npy) {
            Tensor *t = npy_read_mem(exact, len, path, d2);
            cr_expect_null(t);
            rt_tensor_free(t);
        } else {
            SafeTensors *st = st_open_mem(exact, len, path, d2);
            cr_expect_null(st);
            st_close(st);
        }
        cr_expect_str_eq(first_error(d2), first_error(d), "%s: file and memory paths differ", file);
        free(exact);
        free(buf);
        diag_destroy(d2);
        diag_destroy(d);
        listed++;
    }
    fclose(m);
    /* Every file in the directory is listed. */
    DIR *dir = opendir(SRC "/corrupt");
    int files = 0;
    for (struct dirent *e; (e = readdir(dir));)
        if (e->d_name[0] != '.' && strcmp(e->d_name, "MANIFEST.tsv") != 0) files++;
    closedir(dir);
    cr_assert_eq(files, listed, "files in tests/data/corrupt and MANIFEST.tsv disagree");
    cr_assert_geq(listed, 60);
}
