/* safetensors reader and writer (see safetensors.h; every rule and message is
 * listed in docs/formats.md).
 *
 * Reading: st_open maps the file read-only and hands the bytes to st_parse,
 * which st_open_mem calls directly -- so the file and memory paths (and the
 * fuzzer, which uses the latter) share every line of validation.  st_parse
 * works in four passes and stops at the first error, reporting it with the
 * file name as location and the tensor name in the text:
 *   1. framing: length prefix, header length limits, JSON syntax (cJSON, on a
 *      NUL-terminated private copy of the header so the parser can never run
 *      past it), nothing but whitespace after the JSON value;
 *   2. each entry on its own: field set and types, dtype, shape (integers,
 *      rank, element count overflow), data_offsets (order, bounds) and their
 *      agreement with dtype * shape; __metadata__ must map strings to strings;
 *   3. names: entries are sorted by name (the order st_name exposes, and what
 *      makes st_get a binary search), which also finds the duplicates cJSON
 *      silently keeps;
 *   4. layout: sorted by (begin, end), each tensor must start exactly where
 *      the previous one ended, the first at 0 and the last ending at the end of
 *      the data section.  This is the reference implementation's rule ("the
 *      byte buffer must be entirely indexed, without holes"); it rejects
 *      overlaps and holes alike, zero-size tensors included.
 * JSON numbers are doubles in cJSON, so integers are accepted only when they
 * are exact (integral, 0 <= v <= 2^53); 2.5 or -1 are refused.
 *
 * Views point into the mapping.  A tensor whose address is not a multiple of
 * its element size (a foreign file whose header is not padded to 8, or an
 * unaligned buffer) is copied once into a malloc'd buffer, so callers may
 * always cast view data to the element type.
 *
 * Writing builds the JSON text itself (exact 64-bit integers, deterministic
 * order) and orders the data by element size then name, which keeps every
 * tensor aligned without padding holes; the file goes through atomic_file.h
 * (temporary file renamed into place). */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the safetensors reader assumes a little-endian host"
#endif

#define ERR(...) diag_error(d, loc_file(name), __VA_ARGS__)

typedef struct {
    char *name;
    DType dtype;
    int rank;
    int64_t shape[IR_MAX_RANK];
    uint64_t begin, end;
    const void *data; /* into the mapping or `copy` */
    void *copy;       /* aligned copy, or NULL */
} Entry;

typedef struct {
    char *key, *value;
} Meta;

struct SafeTensors {
    void *map;
    size_t map_len;
    Entry *e;
    int n;
    Meta *meta;
    int nmeta;
};

static const char *const ST_DTYPES[DT_COUNT] = {
    [DT_F32] = "F32", [DT_F16] = "F16", [DT_BF16] = "BF16", [DT_I8] = "I8",
    [DT_I32] = "I32", [DT_I64] = "I64", [DT_BOOL] = "BOOL",
};

const char *st_dtype_name(DType t) { return (unsigned)t < DT_COUNT ? ST_DTYPES[t] : NULL; }

static bool st_dtype_from_name(const char *s, DType *out) {
    for (int i = 0; i < DT_COUNT; i++) {
        if (strcmp(s, ST_DTYPES[i]) == 0) {
            *out = (DType)i;
            return true;
        }
    }
    return false;
}

/* "[2, 3]" into buf. */
static void shape_text(int rank, const int64_t *shape, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

/* ---- freeing ------------------------------------------------------------- */

static void free_contents(SafeTensors *st) {
    for (int i = 0; i < st->n; i++) {
        free(st->e[i].name);
        free(st->e[i].copy);
    }
    free(st->e);
    for (int i = 0; i < st->nmeta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->meta);
}

void st_close(SafeTensors *st) {
    if (!st) return;
    free_contents(st);
    if (st->map) munmap(st->map, st->map_len);
    free(st);
}

/* ---- pass 2: one entry --------------------------------------------------- */

static const double MAX_EXACT = 9007199254740992.0; /* 2^53 */

/* An exact non-negative JSON integer. */
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= MAX_EXACT)) return false; /* also NaN */
    uint64_t u = (uint64_t)v;
    if ((double)u != v) return false;
    *out = u;
    return true;
}

static bool parse_shape(const cJSON *j, Entry *e, const char *name, Diag *d) {
    if (!cJSON_IsArray(j)) {
        ERR("tensor '%s': 'shape' is not a list", e->name);
        return false;
    }
    int rank = cJSON_GetArraySize(j);
    if (rank > IR_MAX_RANK) {
        ERR("tensor '%s': shape has %d dimensions (the limit is %d)", e->name, rank, IR_MAX_RANK);
        return false;
    }
    int i = 0;
    for (const cJSON *c = j->child; c; c = c->next, i++) {
        uint64_t v;
        if (!json_uint(c, &v)) {
            if (cJSON_IsNumber(c) && c->valuedouble < 0)
                ERR("tensor '%s': shape entry %d is negative", e->name, i);
            else
                ERR("tensor '%s': shape entry %d is not a non-negative integer (at most 2^53)", e->name, i);
            return false;
        }
        e->shape[i] = (int64_t)v;
    }
    e->rank = rank;
    return true;
}

static bool parse_offsets(const cJSON *j, Entry *e, const char *name, Diag *d) {
    uint64_t v[2];
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 2 || !json_uint(j->child, &v[0]) ||
        !json_uint(j->child->next, &v[1])) {
        ERR("tensor '%s': 'data_offsets' is not a list of 2 non-negative integers", e->name);
        return false;
    }
    e->begin = v[0];
    e->end = v[1];
    return true;
}

static bool parse_entry(const cJSON *j, Entry *e, uint64_t data_len, const char *name, Diag *d) {
    if (e->name[0] == '\0') {
        ERR("a tensor has an empty name");
        return false;
    }
    if (!cJSON_IsObject(j)) {
        ERR("tensor '%s': the entry is not a JSON object", e->name);
        return false;
    }
    static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
    const cJSON *seen[3] = {NULL, NULL, NULL};
    for (const cJSON *c = j->child; c; c = c->next) {
        int k = 0;
        while (k < 3 && strcmp(c->string, fields[k]) != 0)
            k++;
        if (k == 3) {
            ERR("tensor '%s': unknown field '%s' (expected dtype, shape, data_offsets)", e->name, c->string);
            return false;
        }
        if (seen[k]) {
            ERR("tensor '%s': duplicate field '%s'", e->name, fields[k]);
            return false;
        }
        seen[k] = c;
    }
    for (int k = 0; k < 3; k++) {
        if (!seen[k]) {
            ERR("tensor '%s': missing field '%s'", e->name, fields[k]);
            return false;
        }
    }
    if (!cJSON_IsString(seen[0])) {
        ERR("tensor '%s': 'dtype' is not a string", e->name);
        return false;
    }
    if (!st_dtype_from_name(seen[0]->valuestring, &e->dtype)) {
        ERR("tensor '%s': unsupported dtype '%s' (supported: F32, F16, BF16, I8, I32, I64, BOOL)", e->name,
            seen[0]->valuestring);
        return false;
    }
    if (!parse_shape(seen[1], e, name, d) || !parse_offsets(seen[2], e, name, d)) return false;
    char sh[256];
    shape_text(e->rank, e->shape, sh, sizeof sh);
    int64_t numel = rt_numel(e->rank, e->shape);
    uint64_t need;
    if (numel < 0 || __builtin_mul_overflow((uint64_t)numel, (uint64_t)dtype_size(e->dtype), &need)) {
        ERR("tensor '%s': the element count of shape %s overflows", e->name, sh);
        return false;
    }
    if (e->begin > e->end) {
        ERR("tensor '%s': data_offsets [%llu, %llu] begin after they end", e->name,
            (unsigned long long)e->begin, (unsigned long long)e->end);
        return false;
    }
    if (e->end > data_len) {
        ERR("tensor '%s': data_offsets [%llu, %llu] extend past the end of the data section "
            "(%llu bytes)",
            e->name, (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_len);
        return false;
    }
    if (e->end - e->begin != need) {
        ERR("tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but %s %s needs %llu", e->name,
            (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)(e->end - e->begin),
            ST_DTYPES[e->dtype], sh, (unsigned long long)need);
        return false;
    }
    return true;
}

static bool parse_metadata(const cJSON *j, SafeTensors *st, const char *name, Diag *d) {
    if (!cJSON_IsObject(j)) {
        ERR("__metadata__ is not a JSON object");
        return false;
    }
    int n = cJSON_GetArraySize(j);
    st->meta = calloc(n ? (size_t)n : 1, sizeof(Meta));
    if (!st->meta) {
        ERR("out of memory");
        return false;
    }
    for (const cJSON *c = j->child; c; c = c->next) {
        if (!cJSON_IsString(c)) {
            ERR("__metadata__ value for key '%s' is not a string", c->string);
            return false;
        }
        Meta *m = &st->meta[st->nmeta];
        m->key = strdup(c->string);
        m->value = strdup(c->valuestring);
        st->nmeta++;
        if (!m->key || !m->value) {
            ERR("out of memory");
            return false;
        }
    }
    return true;
}

/* ---- pass 3 and 4 helpers ------------------------------------------------ */

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp(((const Entry *)a)->name, ((const Entry *)b)->name);
}

static int cmp_meta_key(const void *a, const void *b) {
    return strcmp(((const Meta *)a)->key, ((const Meta *)b)->key);
}

static int cmp_entry_offsets(const void *a, const void *b) {
    const Entry *x = *(const Entry *const *)a, *y = *(const Entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static bool check_layout(SafeTensors *st, uint64_t data_len, const char *name, Diag *d) {
    const Entry **by = malloc(sizeof(Entry *) * (st->n ? (size_t)st->n : 1));
    if (!by) {
        ERR("out of memory");
        return false;
    }
    for (int i = 0; i < st->n; i++)
        by[i] = &st->e[i];
    qsort(by, (size_t)st->n, sizeof *by, cmp_entry_offsets);
    uint64_t prev_end = 0;
    bool ok = true;
    for (int i = 0; i < st->n && ok; i++) {
        const Entry *e = by[i];
        if (e->begin < prev_end) {
            const Entry *p = by[i - 1];
            ERR("tensors '%s' and '%s' overlap (data_offsets [%llu, %llu] and [%llu, %llu])", p->name,
                e->name, (unsigned long long)p->begin, (unsigned long long)p->end,
                (unsigned long long)e->begin, (unsigned long long)e->end);
            ok = false;
        } else if (e->begin > prev_end) {
            ERR("hole in the data section: bytes [%llu, %llu) before tensor '%s' are not used by "
                "any tensor",
                (unsigned long long)prev_end, (unsigned long long)e->begin, e->name);
            ok = false;
        }
        prev_end = e->end;
    }
    if (ok && prev_end != data_len) {
        ERR("hole in the data section: bytes [%llu, %llu) at its end are not used by any tensor",
            (unsigned long long)prev_end, (unsigned long long)data_len);
        ok = false;
    }
    free(by);
    return ok;
}

/* ---- the shared validator ------------------------------------------------ */

static SafeTensors *st_parse(const unsigned char *buf, size_t len, const char *name, Diag *d) {
    if (len < 8) {
        ERR("file is too short (%zu bytes) to hold the 8-byte header length", len);
        return NULL;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen == 0) {
        ERR("header length is 0");
        return NULL;
    }
    if (hlen > ST_MAX_HEADER) {
        ERR("header length %llu exceeds the limit of %d bytes", (unsigned long long)hlen, (int)ST_MAX_HEADER);
        return NULL;
    }
    if (hlen > len - 8) {
        ERR("header length %llu is past the end of the file (only %zu bytes follow)",
            (unsigned long long)hlen, len - 8);
        return NULL;
    }
    const unsigned char *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;

    SafeTensors *st = calloc(1, sizeof *st);
    char *text = malloc((size_t)hlen + 1);
    cJSON *root = NULL;
    if (!st || !text) {
        ERR("out of memory");
        goto fail;
    }
    memcpy(text, buf + 8, (size_t)hlen);
    text[hlen] = '\0';
    /* cJSON takes every byte <= 32 (NUL included) for whitespace; JSON allows
     * no raw control characters but tab, LF and CR. */
    for (size_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') {
            ERR("header is not well-formed JSON (control character 0x%02x at byte %zu of the "
                "header)",
                ch, i);
            goto fail;
        }
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, false);
    if (!root) {
        size_t off = end && end >= text && end <= text + hlen ? (size_t)(end - text) : 0;
        ERR("header is not well-formed JSON (error near byte %zu of the header)", off);
        goto fail;
    }
    for (const char *p = end; p < text + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            ERR("header is not well-formed JSON (unexpected text after the top-level value at "
                "byte %zu of the header)",
                (size_t)(p - text));
            goto fail;
        }
    }
    if (!cJSON_IsObject(root)) {
        ERR("header is not a JSON object");
        goto fail;
    }

    /* Pass 2: each entry. */
    int count = cJSON_GetArraySize(root);
    st->e = calloc(count ? (size_t)count : 1, sizeof(Entry));
    if (!st->e) {
        ERR("out of memory");
        goto fail;
    }
    bool have_meta = false;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (have_meta) {
                ERR("duplicate key '__metadata__'");
                goto fail;
            }
            have_meta = true;
            if (!parse_metadata(c, st, name, d)) goto fail;
            continue;
        }
        Entry *e = &st->e[st->n];
        e->name = strdup(c->string);
        if (!e->name) {
            ERR("out of memory");
            goto fail;
        }
        st->n++;
        if (!parse_entry(c, e, data_len, name, d)) goto fail;
    }

    /* Pass 3: names. */
    qsort(st->e, (size_t)st->n, sizeof(Entry), cmp_entry_name);
    for (int i = 1; i < st->n; i++) {
        if (strcmp(st->e[i - 1].name, st->e[i].name) == 0) {
            ERR("duplicate tensor name '%s'", st->e[i].name);
            goto fail;
        }
    }
    if (st->nmeta) qsort(st->meta, (size_t)st->nmeta, sizeof(Meta), cmp_meta_key);
    for (int i = 1; i < st->nmeta; i++) {
        if (strcmp(st->meta[i - 1].key, st->meta[i].key) == 0) {
            ERR("__metadata__: duplicate key '%s'", st->meta[i].key);
            goto fail;
        }
    }

    /* Pass 4: layout. */
    if (!check_layout(st, data_len, name, d)) goto fail;

    for (int i = 0; i < st->n; i++) {
        Entry *e = &st->e[i];
        const unsigned char *p = data + e->begin;
        size_t sz = (size_t)dtype_size(e->dtype), nbytes = (size_t)(e->end - e->begin);
        if ((uintptr_t)p % sz != 0) {
            e->copy = malloc(nbytes ? nbytes : 1);
            if (!e->copy) {
                ERR("tensor '%s': out of memory copying %zu bytes", e->name, nbytes);
                goto fail;
            }
            memcpy(e->copy, p, nbytes);
            p = e->copy;
        }
        e->data = p;
    }
    cJSON_Delete(root);
    free(text);
    return st;

fail:
    cJSON_Delete(root);
    free(text);
    if (st) free_contents(st);
    free(st);
    return NULL;
}

SafeTensors *st_open_mem(const void *buf, size_t len, const char *name, Diag *d) {
    return st_parse(buf, len, name, d);
}

SafeTensors *st_open(const char *path, Diag *d) {
    const char *name = path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ERR("cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        ERR("cannot stat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        ERR("not a regular file");
        close(fd);
        return NULL;
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        close(fd);
        ERR("file is too short (%zu bytes) to hold the 8-byte header length", len);
        return NULL;
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) {
        ERR("cannot map: %s", strerror(e));
        return NULL;
    }
    SafeTensors *st = st_parse(map, len, name, d);
    if (!st) {
        munmap(map, len);
        return NULL;
    }
    st->map = map;
    st->map_len = len;
    return st;
}

/* ---- accessors ----------------------------------------------------------- */

int st_count(const SafeTensors *st) { return st->n; }

const char *st_name(const SafeTensors *st, int i) { return i >= 0 && i < st->n ? st->e[i].name : NULL; }

bool st_get_index(const SafeTensors *st, int i, Tensor *out) {
    if (i < 0 || i >= st->n) return false;
    const Entry *e = &st->e[i];
    memset(out, 0, sizeof *out);
    out->dtype = e->dtype;
    out->rank = e->rank;
    memcpy(out->shape, e->shape, sizeof e->shape);
    out->data = (void *)e->data; /* read-only mapping: callers must not write */
    out->nbytes = (size_t)(e->end - e->begin);
    out->owned = false;
    return true;
}

bool st_get(const SafeTensors *st, const char *name, Tensor *out) {
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, st->e[mid].name);
        if (c == 0) return st_get_index(st, mid, out);
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return false;
}

const char *st_metadata(const SafeTensors *st, const char *key) {
    int lo = 0, hi = st->nmeta - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(key, st->meta[mid].key);
        if (c == 0) return st->meta[mid].value;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

int st_metadata_count(const SafeTensors *st) { return st->nmeta; }

const char *st_metadata_key(const SafeTensors *st, int i) {
    return i >= 0 && i < st->nmeta ? st->meta[i].key : NULL;
}

/* ---- writer -------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof tmp)
        buf_put(b, tmp, (size_t)n);
    else
        b->oom = true; /* only short numeric formats are used */
}

static void buf_json_str(Buf *b, const char *s) {
    buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            buf_put(b, esc, 2);
        } else if (*p < 0x20) {
            buf_printf(b, "\\u%04x", *p);
        } else {
            buf_put(b, (const char *)p, 1);
        }
    }
    buf_put(b, "\"", 1);
}

typedef struct {
    const char *name;
    const Tensor *t;
    uint64_t begin, end;
} WEntry;

static int cmp_wentry_name(const void *a, const void *b) {
    return strcmp(((const WEntry *)a)->name, ((const WEntry *)b)->name);
}

static int cmp_wentry_layout(const void *a, const void *b) {
    const WEntry *x = *(const WEntry *const *)a, *y = *(const WEntry *const *)b;
    int sx = dtype_size(x->t->dtype), sy = dtype_size(y->t->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_meta_idx(const void *a, const void *b) {
    return strcmp(((const Meta *)a)->key, ((const Meta *)b)->key);
}

static bool check_write_tensor(const char *tname, const Tensor *t, const char *name, Diag *d) {
    char why[320];
    if (!rt_tensor_check(t, why, sizeof why)) {
        ERR("cannot write tensor '%s': %s", tname, why);
        return false;
    }
    for (int i = 0; i < t->rank; i++) {
        if ((double)t->shape[i] > MAX_EXACT) {
            ERR("cannot write tensor '%s': dimension %d exceeds 2^53", tname, i);
            return false;
        }
    }
    return true;
}

bool st_write(const char *path, int n, const char *const *names, const Tensor *const *tensors, int nmeta,
              const char *const *meta_keys, const char *const *meta_values, Diag *d) {
    const char *name = path;
    if (n < 0 || nmeta < 0 || (n && (!names || !tensors)) || (nmeta && (!meta_keys || !meta_values))) {
        ERR("cannot write safetensors: invalid arguments");
        return false;
    }
    WEntry *w = calloc(n ? (size_t)n : 1, sizeof *w);
    const WEntry **lay = calloc(n ? (size_t)n : 1, sizeof *lay);
    Meta *m = calloc(nmeta ? (size_t)nmeta : 1, sizeof *m);
    Buf b = {0};
    bool ok = false;
    if (!w || !lay || !m) {
        ERR("out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (!names[i] || !names[i][0] || strcmp(names[i], "__metadata__") == 0) {
            ERR("cannot write safetensors: tensor %d has an invalid name '%s'", i,
                names[i] ? names[i] : "(null)");
            goto out;
        }
        if (!check_write_tensor(names[i], tensors[i], name, d)) goto out;
        w[i] = (WEntry){names[i], tensors[i], 0, 0};
    }
    qsort(w, (size_t)n, sizeof *w, cmp_wentry_name);
    for (int i = 1; i < n; i++) {
        if (strcmp(w[i - 1].name, w[i].name) == 0) {
            ERR("cannot write safetensors: duplicate tensor name '%s'", w[i].name);
            goto out;
        }
    }
    for (int i = 0; i < nmeta; i++) {
        if (!meta_keys[i] || !meta_values[i]) {
            ERR("cannot write safetensors: metadata entry %d is NULL", i);
            goto out;
        }
        m[i] = (Meta){(char *)meta_keys[i], (char *)meta_values[i]};
    }
    qsort(m, (size_t)nmeta, sizeof *m, cmp_meta_idx);
    for (int i = 1; i < nmeta; i++) {
        if (strcmp(m[i - 1].key, m[i].key) == 0) {
            ERR("cannot write safetensors: duplicate metadata key '%s'", m[i].key);
            goto out;
        }
    }

    /* Data layout: element size descending, then name. */
    for (int i = 0; i < n; i++)
        lay[i] = &w[i];
    qsort(lay, (size_t)n, sizeof *lay, cmp_wentry_layout);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        WEntry *e = (WEntry *)lay[i];
        e->begin = off;
        off += e->t->nbytes;
        e->end = off;
    }

    /* Header JSON, tensors in name order. */
    buf_put(&b, "{", 1);
    if (nmeta) {
        buf_put(&b, "\"__metadata__\":{", 16);
        for (int i = 0; i < nmeta; i++) {
            if (i) buf_put(&b, ",", 1);
            buf_json_str(&b, m[i].key);
            buf_put(&b, ":", 1);
            buf_json_str(&b, m[i].value);
        }
        buf_put(&b, "}", 1);
    }
    for (int i = 0; i < n; i++) {
        const WEntry *e = &w[i];
        if (i || nmeta) buf_put(&b, ",", 1);
        buf_json_str(&b, e->name);
        buf_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", ST_DTYPES[e->t->dtype]);
        for (int k = 0; k < e->t->rank; k++)
            buf_printf(&b, "%s%lld", k ? "," : "", (long long)e->t->shape[k]);
        buf_printf(&b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)e->begin,
                   (unsigned long long)e->end);
    }
    buf_put(&b, "}", 1);
    while (!b.oom && b.n % 8 != 0)
        buf_put(&b, " ", 1);
    if (b.oom) {
        ERR("out of memory");
        goto out;
    }
    if (b.n > ST_MAX_HEADER) {
        ERR("cannot write safetensors: the header would be %zu bytes (the limit is %d)", b.n,
            (int)ST_MAX_HEADER);
        goto out;
    }

    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)b.n >> (8 * i));
    AtomicFile af;
    FILE *f = af_open(&af, path, d);
    if (!f) goto out;
    bool wrote = fwrite(len8, 1, 8, f) == 8 && fwrite(b.p, 1, b.n, f) == b.n;
    for (int i = 0; i < n && wrote; i++)
        wrote = rt_tensor_fwrite(f, lay[i]->t);
    if (!wrote) {
        ERR("cannot write: %s", strerror(errno));
        af_abort(&af);
        goto out;
    }
    ok = af_commit(&af, d);
out:
    free(w);
    free(lay);
    free(m);
    free(b.p);
    return ok;
}
