/* numpy .npy reader and writer (see npy.h for the accepted forms and the bf16
 * convention, docs/formats.md for every message).
 *
 * Reading is three steps shared by the file and the memory paths:
 *   1. the preamble (magic, version, header length), checked against the
 *      total size so a lying header length is caught before anything is read;
 *   2. the header dict, parsed by a small recursive-descent parser for exactly
 *      the Python literal form numpy writes -- `{'descr': '<f4',
 *      'fortran_order': False, 'shape': (2, 3), }` with keys in any order,
 *      either quote, trailing commas and `()` for scalars.  It never evaluates
 *      anything, never reads past the header, and keeps strings in fixed
 *      buffers, so no input can make it allocate or recurse;
 *   3. the data size: exactly numel * element size bytes must follow the
 *      header, checked before the tensor is allocated, so a huge shape in a
 *      tiny file cannot trigger a huge allocation.
 * The file path reads the preamble and header with fread and then the data
 * straight into the tensor, so a file is never held twice in memory.
 *
 * Writing builds the header with snprintf, pads it so the data starts at a
 * multiple of 64 bytes (what numpy >= 1.24 does), and goes through
 * atomic_file.h: a temporary file next to the target, renamed into place. */
#include "npy.h"

#include "atomic_file.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .npy reader assumes a little-endian host"
#endif

#define ERR(...) diag_error(d, loc_file(name), __VA_ARGS__)

static const unsigned char MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
enum { PREAMBLE_MAX = 12 };

/* ---- descr <-> dtype ----------------------------------------------------- */

static const struct {
    const char *code; /* descr without the byte-order character */
    DType dtype;
} DESCRS[] = {
    {"f4", DT_F32}, {"f2", DT_F16}, {"u2", DT_BF16}, {"i1", DT_I8},
    {"i4", DT_I32}, {"i8", DT_I64}, {"b1", DT_BOOL},
};

#define SUPPORTED_DESCRS "'<f4', '<f2', '<u2' (bf16 bits), '|i1', '<i4', '<i8', '|b1'"

const char *npy_descr(DType t) {
    switch (t) {
    case DT_F32: return "<f4";
    case DT_F16: return "<f2";
    case DT_BF16: return "<u2";
    case DT_I8: return "|i1";
    case DT_I32: return "<i4";
    case DT_I64: return "<i8";
    case DT_BOOL: return "|b1";
    default: return NULL;
    }
}

static bool descr_to_dtype(const char *descr, const char *name, Diag *d, DType *out) {
    char order = '=';
    const char *code = descr;
    if (*code && strchr("<>=|", *code)) order = *code++;
    for (size_t i = 0; i < sizeof DESCRS / sizeof DESCRS[0]; i++) {
        if (strcmp(code, DESCRS[i].code) != 0) continue;
        if (order == '>' && dtype_size(DESCRS[i].dtype) > 1) {
            ERR("big-endian data is not supported (descr '%s'); convert with arr.astype('<%s')", descr, code);
            return false;
        }
        *out = DESCRS[i].dtype;
        return true;
    }
    ERR("unsupported dtype: descr '%s' (supported: " SUPPORTED_DESCRS ")", descr);
    return false;
}

/* ---- step 1: preamble ---------------------------------------------------- */

typedef struct {
    int major;
    size_t hstart, hlen; /* the dict text is bytes [hstart, hstart + hlen) */
} Preamble;

/* `p` holds the first min(total, PREAMBLE_MAX) bytes of a file of `total` bytes. */
static bool read_preamble(const unsigned char *p, size_t total, const char *name, Diag *d, Preamble *pre) {
    size_t have = total < PREAMBLE_MAX ? total : PREAMBLE_MAX;
    size_t m = have < sizeof MAGIC ? have : sizeof MAGIC;
    if (total == 0) {
        ERR("not a .npy file: the file is empty");
        return false;
    }
    if (memcmp(p, MAGIC, m) != 0) {
        ERR("not a .npy file: bad magic (expected \\x93NUMPY)");
        return false;
    }
    if (have < 8) {
        ERR("truncated header: the file has only %zu bytes", total);
        return false;
    }
    int major = p[6], minor = p[7];
    if (major < 1 || major > 3 || minor != 0) {
        ERR("unsupported .npy format version %d.%d (supported: 1.0, 2.0, 3.0)", major, minor);
        return false;
    }
    size_t lenbytes = major == 1 ? 2 : 4;
    if (have < 8 + lenbytes) {
        ERR("truncated header: the file has only %zu bytes", total);
        return false;
    }
    size_t hlen = (size_t)p[8] | (size_t)p[9] << 8;
    if (lenbytes == 4) hlen |= (size_t)p[10] << 16 | (size_t)p[11] << 24;
    if (hlen == 0) {
        ERR("malformed header: header length is 0");
        return false;
    }
    if (hlen > NPY_MAX_HEADER) {
        ERR("malformed header: header length %zu exceeds the limit of %d bytes", hlen, (int)NPY_MAX_HEADER);
        return false;
    }
    if (hlen > total - (8 + lenbytes)) {
        ERR("truncated header: header length is %zu but only %zu bytes follow", hlen, total - (8 + lenbytes));
        return false;
    }
    pre->major = major;
    pre->hstart = 8 + lenbytes;
    pre->hlen = hlen;
    return true;
}

/* ---- step 2: the header dict --------------------------------------------- */

typedef struct {
    const char *s;
    size_t n, i;
    int major;
    const char *name;
    Diag *d;
} Cur;

typedef struct {
    DType dtype;
    int rank;
    int64_t shape[IR_MAX_RANK];
} Header;

static void skip_ws(Cur *c) {
    while (c->i < c->n &&
           (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r'))
        c->i++;
}

static int peek(const Cur *c) { return c->i < c->n ? (unsigned char)c->s[c->i] : -1; }

static bool expected(Cur *c, const char *what) {
    Diag *d = c->d;
    const char *name = c->name;
    if (c->i >= c->n)
        ERR("malformed header: expected %s, found the end of the header", what);
    else if (c->s[c->i] >= 0x20 && c->s[c->i] < 0x7f)
        ERR("malformed header: expected %s at byte %zu of the header, found '%c'", what, c->i, c->s[c->i]);
    else
        ERR("malformed header: expected %s at byte %zu of the header, found byte 0x%02x", what, c->i,
            (unsigned char)c->s[c->i]);
    return false;
}

static bool accept(Cur *c, char ch) {
    skip_ws(c);
    if (peek(c) != (unsigned char)ch) return false;
    c->i++;
    return true;
}

enum { STR_MAX = 64 };

/* A quoted string without escapes into buf (NUL-terminated). */
static bool parse_str(Cur *c, char buf[STR_MAX], const char *what) {
    Diag *d = c->d;
    const char *name = c->name;
    skip_ws(c);
    int q = peek(c);
    if (q != '\'' && q != '"') return expected(c, what);
    size_t start = ++c->i, len = 0;
    for (;;) {
        if (c->i >= c->n) {
            ERR("malformed header: unterminated string starting at byte %zu of the header", start - 1);
            return false;
        }
        char ch = c->s[c->i++];
        if (ch == q) break;
        if (ch == '\\') {
            ERR("malformed header: escape sequences in strings are not supported (byte %zu of the header)",
                c->i - 1);
            return false;
        }
        if (ch == '\n') {
            ERR("malformed header: unterminated string starting at byte %zu of the header", start - 1);
            return false;
        }
        if (len + 1 >= STR_MAX) {
            ERR("malformed header: string starting at byte %zu of the header is too long", start - 1);
            return false;
        }
        buf[len++] = ch;
    }
    buf[len] = '\0';
    return true;
}

static bool is_ident_char(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

static bool parse_bool(Cur *c, bool *out) {
    skip_ws(c);
    static const char *const words[2] = {"False", "True"};
    for (int v = 0; v < 2; v++) {
        size_t len = strlen(words[v]);
        if (c->n - c->i >= len && memcmp(c->s + c->i, words[v], len) == 0 &&
            !(c->i + len < c->n && is_ident_char((unsigned char)c->s[c->i + len]))) {
            c->i += len;
            *out = v;
            return true;
        }
    }
    return expected(c, "True or False for 'fortran_order'");
}

static bool parse_dim(Cur *c, int64_t *out) {
    Diag *d = c->d;
    const char *name = c->name;
    skip_ws(c);
    if (peek(c) == '-') {
        ERR("malformed header: negative dimension in 'shape' (byte %zu of the header)", c->i);
        return false;
    }
    if (peek(c) < '0' || peek(c) > '9') return expected(c, "a non-negative integer in 'shape'");
    int64_t v = 0;
    while (peek(c) >= '0' && peek(c) <= '9') {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (int64_t)(c->s[c->i] - '0'), &v)) {
            ERR("malformed header: dimension in 'shape' is too large (byte %zu of the header)", c->i);
            return false;
        }
        c->i++;
    }
    /* Python 2 numpy wrote longs as 3L; versions 1.0/2.0 may contain them. */
    if (c->major < 3 && (peek(c) == 'L' || peek(c) == 'l')) c->i++;
    if (peek(c) == '.' || peek(c) == 'e' || peek(c) == 'E' || is_ident_char(peek(c))) {
        ERR("malformed header: dimension in 'shape' is not an integer (byte %zu of the header)", c->i);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_shape(Cur *c, Header *h) {
    Diag *d = c->d;
    const char *name = c->name;
    skip_ws(c);
    if (peek(c) == '[') {
        ERR("malformed header: 'shape' must be a tuple such as (2, 3), not a list");
        return false;
    }
    if (!accept(c, '(')) return expected(c, "a tuple for 'shape'");
    h->rank = 0;
    if (accept(c, ')')) return true;
    for (;;) {
        int64_t v = 0;
        if (!parse_dim(c, &v)) return false;
        if (h->rank == IR_MAX_RANK) {
            ERR("malformed header: 'shape' has more than %d dimensions", IR_MAX_RANK);
            return false;
        }
        h->shape[h->rank++] = v;
        if (accept(c, ',')) {
            if (accept(c, ')')) return true;
            continue;
        }
        if (accept(c, ')')) {
            if (h->rank == 1) {
                ERR("malformed header: 'shape' (%lld) is not a tuple; a 1-d shape is written "
                    "(%lld,)",
                    (long long)v, (long long)v);
                return false;
            }
            return true;
        }
        return expected(c, "',' or ')' in 'shape'");
    }
}

static bool parse_header(const char *s, size_t n, int major, const char *name, Diag *d, Header *h) {
    if (s[n - 1] != '\n') {
        ERR("malformed header: the header does not end with a newline");
        return false;
    }
    Cur c = {s, n, 0, major, name, d};
    if (!accept(&c, '{')) return expected(&c, "'{' (the header must be a dict)");
    bool have_descr = false, have_fortran = false, have_shape = false, fortran = false;
    char descr[STR_MAX] = "";
    while (!accept(&c, '}')) {
        char key[STR_MAX];
        if (!parse_str(&c, key, "a quoted key or '}'")) return false;
        if (!accept(&c, ':')) return expected(&c, "':' after a key");
        bool *seen;
        if (strcmp(key, "descr") == 0)
            seen = &have_descr;
        else if (strcmp(key, "fortran_order") == 0)
            seen = &have_fortran;
        else if (strcmp(key, "shape") == 0)
            seen = &have_shape;
        else {
            ERR("malformed header: unknown key '%s' (expected 'descr', 'fortran_order' and "
                "'shape')",
                key);
            return false;
        }
        if (*seen) {
            ERR("malformed header: duplicate key '%s'", key);
            return false;
        }
        *seen = true;
        if (seen == &have_descr) {
            skip_ws(&c);
            if (peek(&c) == '[') {
                ERR("unsupported dtype: structured (record) arrays are not supported");
                return false;
            }
            if (!parse_str(&c, descr, "a quoted string for 'descr'")) return false;
        } else if (seen == &have_fortran) {
            if (!parse_bool(&c, &fortran)) return false;
        } else if (!parse_shape(&c, h)) {
            return false;
        }
        if (accept(&c, ',')) continue;
        if (accept(&c, '}')) break;
        return expected(&c, "',' or '}' in the header dict");
    }
    skip_ws(&c);
    if (c.i != c.n) {
        ERR("malformed header: unexpected text after the header dict (byte %zu of the header)", c.i);
        return false;
    }
    const char *missing = !have_descr     ? "descr"
                          : !have_fortran ? "fortran_order"
                          : !have_shape   ? "shape"
                                          : NULL;
    if (missing) {
        ERR("malformed header: missing key '%s'", missing);
        return false;
    }
    if (!descr_to_dtype(descr, name, d, &h->dtype)) return false;
    /* Fortran order is the same layout as C order when at most one dimension
     * exceeds 1 (numpy itself writes such arrays as either). */
    int big = 0;
    for (int i = 0; i < h->rank; i++)
        big += h->shape[i] > 1;
    if (fortran && big > 1) {
        ERR("fortran_order is True: Fortran-order arrays are not supported; save a C-order "
            "array (np.ascontiguousarray(arr))");
        return false;
    }
    return true;
}

/* ---- step 3: sizes ------------------------------------------------------- */

/* Expected data bytes of h, or false with an error on overflow. */
static bool data_bytes(const Header *h, const char *name, Diag *d, size_t *out) {
    int64_t n = rt_numel(h->rank, h->shape);
    size_t bytes;
    if (n < 0 || (uint64_t)n > SIZE_MAX ||
        __builtin_mul_overflow((size_t)n, (size_t)dtype_size(h->dtype), &bytes) ||
        bytes > (size_t)INT64_MAX) {
        char buf[256];
        rt_shape_str(h->dtype, h->rank, h->shape, buf, sizeof buf);
        ERR("malformed header: the element count of %s overflows", buf);
        return false;
    }
    *out = bytes;
    return true;
}

static bool check_data_size(size_t expect, size_t found, const char *name, Diag *d) {
    if (found < expect) {
        ERR("truncated: expected %zu bytes of data, found %zu", expect, found);
        return false;
    }
    if (found > expect) {
        ERR("trailing data: expected %zu bytes of data, found %zu (%zu extra bytes at the end)", expect,
            found, found - expect);
        return false;
    }
    return true;
}

static Tensor *new_tensor(const Header *h, size_t bytes, const char *name, Diag *d) {
    Tensor *t = rt_tensor_new(h->dtype, h->rank, h->shape);
    if (!t) ERR("out of memory allocating %zu bytes", bytes);
    return t;
}

static void normalise_bool(Tensor *t) {
    if (t->dtype != DT_BOOL) return;
    unsigned char *p = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        p[i] = p[i] != 0;
}

/* ---- readers ------------------------------------------------------------- */

Tensor *npy_read_mem(const void *buf, size_t len, const char *name, Diag *d) {
    const unsigned char *p = buf;
    Preamble pre;
    Header h;
    size_t bytes;
    if (!read_preamble(p, len, name, d, &pre)) return NULL;
    if (!parse_header((const char *)p + pre.hstart, pre.hlen, pre.major, name, d, &h) ||
        !data_bytes(&h, name, d, &bytes))
        return NULL;
    size_t off = pre.hstart + pre.hlen;
    if (!check_data_size(bytes, len - off, name, d)) return NULL;
    Tensor *t = new_tensor(&h, bytes, name, d);
    if (!t) return NULL;
    if (bytes) memcpy(t->data, p + off, bytes);
    normalise_bool(t);
    return t;
}

static bool read_exact(FILE *f, void *p, size_t n, const char *name, Diag *d) {
    if (n && fread(p, 1, n, f) != n) {
        if (ferror(f))
            ERR("read error: %s", strerror(errno));
        else
            ERR("truncated: the file became shorter while it was being read");
        return false;
    }
    return true;
}

Tensor *npy_read(const char *path, Diag *d) {
    const char *name = path;
    FILE *f = fopen(path, "rb");
    if (!f) {
        ERR("cannot open: %s", strerror(errno));
        return NULL;
    }
    Tensor *t = NULL;
    char *hdr = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        ERR("cannot stat: %s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        ERR("not a regular file");
        goto out;
    }
    size_t total = (size_t)sb.st_size;
    unsigned char pbuf[PREAMBLE_MAX];
    size_t plen = total < PREAMBLE_MAX ? total : PREAMBLE_MAX;
    Preamble pre;
    Header h;
    size_t bytes;
    if (!read_exact(f, pbuf, plen, name, d) || !read_preamble(pbuf, total, name, d, &pre)) goto out;
    /* plen may include the first bytes of the header: re-read from hstart. */
    if (fseek(f, (long)pre.hstart, SEEK_SET) != 0) {
        ERR("seek error: %s", strerror(errno));
        goto out;
    }
    hdr = malloc(pre.hlen);
    if (!hdr) {
        ERR("out of memory allocating %zu bytes", pre.hlen);
        goto out;
    }
    if (!read_exact(f, hdr, pre.hlen, name, d) || !parse_header(hdr, pre.hlen, pre.major, name, d, &h) ||
        !data_bytes(&h, name, d, &bytes))
        goto out;
    size_t off = pre.hstart + pre.hlen;
    if (!check_data_size(bytes, total - off, name, d)) goto out;
    t = new_tensor(&h, bytes, name, d);
    if (!t) goto out;
    if (!read_exact(f, t->data, bytes, name, d)) {
        rt_tensor_free(t);
        t = NULL;
        goto out;
    }
    normalise_bool(t);
out:
    free(hdr);
    fclose(f);
    return t;
}

/* ---- writer -------------------------------------------------------------- */

bool npy_write(const char *path, const Tensor *t, Diag *d) {
    const char *name = path;
    char why[320];
    if (!rt_tensor_check(t, why, sizeof why)) {
        ERR("cannot write .npy: %s", why);
        return false;
    }
    char shape[IR_MAX_RANK * 24 + 8];
    size_t sl = 0;
    shape[sl++] = '(';
    for (int i = 0; i < t->rank; i++)
        sl +=
            (size_t)snprintf(shape + sl, sizeof shape - sl, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (t->rank == 1) shape[sl++] = ',';
    shape[sl++] = ')';
    shape[sl] = '\0';
    char dict[sizeof shape + 128];
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                      npy_descr(t->dtype), shape);
    /* Pad with spaces and a final '\n' so the data starts at a multiple of 64. */
    size_t pre = 10, hlen = (size_t)dl + 1;
    if (pre + hlen > 65535 + 10) pre = 12; /* format 2.0 (never for rank <= 8) */
    hlen = (pre + hlen + 63) / 64 * 64 - pre;
    unsigned char head[sizeof dict + 80];
    memcpy(head, MAGIC, 6);
    head[6] = pre == 10 ? 1 : 2;
    head[7] = 0;
    head[8] = (unsigned char)(hlen & 0xff);
    head[9] = (unsigned char)(hlen >> 8 & 0xff);
    if (pre == 12) {
        head[10] = (unsigned char)(hlen >> 16 & 0xff);
        head[11] = (unsigned char)(hlen >> 24 & 0xff);
    }
    memcpy(head + pre, dict, (size_t)dl);
    memset(head + pre + dl, ' ', hlen - (size_t)dl - 1);
    head[pre + hlen - 1] = '\n';
    AtomicFile af;
    FILE *f = af_open(&af, path, d);
    if (!f) return false;
    if (fwrite(head, 1, pre + hlen, f) != pre + hlen || !rt_tensor_fwrite(f, t)) {
        ERR("cannot write: %s", strerror(errno));
        af_abort(&af);
        return false;
    }
    return af_commit(&af, d);
}
