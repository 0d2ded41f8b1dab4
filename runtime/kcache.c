/* The persistent kernel cache (see kcache.h for the key, the directory and
 * the entry format).
 *
 * Why this way: the cache must be cheap to hit (a warm model load reads a few
 * dozen entries), safe under concurrent writers without locks (rename of a
 * complete temporary file is atomic on POSIX filesystems), and must never
 * turn a damaged file into a wrong kernel (every byte is covered by the
 * header's length, key and SHA-256 checksum).  SHA-256 is written here (FIPS
 * 180-4; checked against its test vectors in tests/unit/test_cuda.c) so the
 * library needs no crypto dependency; it hashes a few MB per second more than
 * a warm load needs.
 *
 * A KCache handle may be shared by threads: counters and the set of entries
 * already reported as corrupt are under a mutex.  The Diag passed in is not
 * locked, so threads that share a handle should use their own Diags (the CUDA
 * builder does all cache I/O on one thread). */
#include "kcache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------------ */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void rt_sha256_init(Sha256 *s) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->len = 0;
    s->nbuf = 0;
}

void rt_sha256_update(Sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->len += n;
    if (s->nbuf) {
        size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take;
        p += take;
        n -= take;
        if (s->nbuf < 64) return;
        sha_block(s->h, s->buf);
        s->nbuf = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha_block(s->h, p);
    memcpy(s->buf, p, n);
    s->nbuf = n;
}

void rt_sha256_final(Sha256 *s, uint8_t out[32]) {
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t padn = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++) pad[padn + i] = (uint8_t)(bits >> (56 - 8 * i));
    rt_sha256_update(s, pad, padn + 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
}

void rt_sha256(const void *data, size_t n, uint8_t out[32]) {
    Sha256 s;
    rt_sha256_init(&s);
    rt_sha256_update(&s, data, n);
    rt_sha256_final(&s, out);
}

void rt_hex(const uint8_t *bytes, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = 0;
}

/* ---- keys ------------------------------------------------------------------------ */

void rt_kcache_key_begin(KCacheKey *k, const char *kind) {
    memset(k, 0, sizeof *k);
    rt_sha256_init(&k->sha);
    rt_kcache_key_add_int(k, "dsc-kcache", KCACHE_FORMAT);
    rt_kcache_key_add_str(k, "kind", kind);
}

void rt_kcache_key_add(KCacheKey *k, const char *name, const void *value, size_t n) {
    char head[128];
    int len = snprintf(head, sizeof head, "%s %zu\n", name, n);
    rt_sha256_update(&k->sha, head, (size_t)len < sizeof head ? (size_t)len : sizeof head - 1);
    rt_sha256_update(&k->sha, value, n);
    rt_sha256_update(&k->sha, "\n", 1);
}

void rt_kcache_key_add_str(KCacheKey *k, const char *name, const char *value) {
    rt_kcache_key_add(k, name, value ? value : "", value ? strlen(value) : 0);
}

void rt_kcache_key_add_int(KCacheKey *k, const char *name, long long value) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", value);
    rt_kcache_key_add(k, name, buf, (size_t)n);
}

void rt_kcache_key_finish(KCacheKey *k) {
    rt_sha256_final(&k->sha, k->digest);
    rt_hex(k->digest, 32, k->hex);
}

/* ---- the cache ----------------------------------------------------------------- */

struct KCache {
    char *dir;
    pthread_mutex_t mu;
    KCacheStats stats;
    bool write_failed; /* reported once; later stores are skipped */
    int nreported;
    char (*reported)[65]; /* keys of entries already reported corrupt */
};

static const char MAGIC[8] = {'D', 'S', 'C', 'K', 'C', 'A', 'C', 'H'};

char *rt_kcache_default_dir(const char **how) {
    const char *v = getenv("DSC_CACHE");
    const char *dummy;
    if (!how) how = &dummy;
    if (v && (strcmp(v, "0") == 0 || strcmp(v, "off") == 0 || strcmp(v, "false") == 0)) {
        *how = "DSC_CACHE=0";
        return NULL;
    }
    char *dir = NULL;
    if ((v = getenv("DSC_CACHE_DIR")) && *v) {
        *how = "DSC_CACHE_DIR";
        dir = strdup(v);
    } else if ((v = getenv("XDG_CACHE_HOME")) && v[0] == '/') {
        *how = "XDG_CACHE_HOME";
        if (asprintf(&dir, "%s/dsc", v) < 0) dir = NULL;
    } else if ((v = getenv("HOME")) && *v) {
        *how = "HOME";
        if (asprintf(&dir, "%s/.cache/dsc", v) < 0) dir = NULL;
    } else {
        *how = "no HOME";
    }
    return dir;
}

/* mkdir -p */
static bool make_dirs(const char *path) {
    char *p = strdup(path);
    if (!p) return false;
    bool ok = true;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) ok = false;
            *s = c;
            if (!c || !ok) break;
        }
    }
    struct stat st;
    ok = ok && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    return ok;
}

KCache *rt_kcache_open(const char *dir, Diag *d) {
    const char *how = "argument";
    char *path = dir ? strdup(dir) : rt_kcache_default_dir(&how);
    if (!path) {
        if (strcmp(how, "DSC_CACHE=0") != 0)
            diag_warning(d, (Loc){0}, "kernel cache: no directory (%s); compiling without a cache", how);
        return NULL;
    }
    if (!make_dirs(path)) {
        diag_warning(d, loc_file(path), "kernel cache: cannot create the directory (%s); compiling without a cache",
                     strerror(errno));
        free(path);
        return NULL;
    }
    KCache *c = calloc(1, sizeof *c);
    if (!c) {
        free(path);
        return NULL;
    }
    c->dir = path;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void rt_kcache_close(KCache *c) {
    if (!c) return;
    pthread_mutex_destroy(&c->mu);
    free(c->reported);
    free(c->dir);
    free(c);
}

const char *rt_kcache_dir(const KCache *c) { return c ? c->dir : NULL; }

KCacheStats rt_kcache_stats(const KCache *c) {
    if (!c) return (KCacheStats){0};
    KCacheStats s;
    pthread_mutex_lock((pthread_mutex_t *)&c->mu);
    s = c->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
    return s;
}

char *rt_kcache_entry_path(const KCache *c, const KCacheKey *key) {
    char *p = NULL;
    if (!c || asprintf(&p, "%s/%.2s/%s.dsck", c->dir, key->hex, key->hex) < 0) return NULL;
    return p;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void count(KCache *c, int *field) {
    pthread_mutex_lock(&c->mu);
    (*field)++;
    pthread_mutex_unlock(&c->mu);
}

/* Reports a corrupt entry once per handle and removes it. */
static void corrupt(KCache *c, const KCacheKey *key, const char *path, const char *why, Diag *d) {
    pthread_mutex_lock(&c->mu);
    c->stats.corrupt++;
    bool seen = false;
    for (int i = 0; i < c->nreported && !seen; i++) seen = strcmp(c->reported[i], key->hex) == 0;
    if (!seen) {
        void *grown = realloc(c->reported, sizeof *c->reported * (size_t)(c->nreported + 1));
        if (grown) {
            c->reported = grown;
            memcpy(c->reported[c->nreported++], key->hex, 65);
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (!seen) diag_warning(d, loc_file(path), "kernel cache: corrupt entry (%s); removed, rebuilding it", why);
    unlink(path);
}

bool rt_kcache_get(KCache *c, const KCacheKey *key, void **data, size_t *size, Diag *d) {
    *data = NULL;
    *size = 0;
    if (!c) return false;
    char *path = rt_kcache_entry_path(c, key);
    if (!path) return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        count(c, &c->stats.misses);
        free(path);
        return false;
    }
    const char *why = NULL;
    uint8_t *buf = NULL;
    uint8_t head[KCACHE_HEADER_BYTES];
    struct stat st;
    ssize_t got = 0;
    if (fstat(fd, &st) != 0 || st.st_size < KCACHE_HEADER_BYTES) {
        why = "shorter than its header";
        goto out;
    }
    for (size_t off = 0; off < sizeof head; off += (size_t)got)
        if ((got = read(fd, head + off, sizeof head - off)) <= 0) {
            why = "unreadable header";
            goto out;
        }
    if (memcmp(head, MAGIC, 8) != 0) {
        why = "bad magic";
        goto out;
    }
    if (get_u32(head + 8) != KCACHE_FORMAT) {
        /* another format version: not damage, just stale; replace silently */
        count(c, &c->stats.misses);
        unlink(path);
        close(fd);
        free(path);
        return false;
    }
    uint64_t len = get_u64(head + 16);
    if ((uint64_t)st.st_size != KCACHE_HEADER_BYTES + len) {
        why = (uint64_t)st.st_size < KCACHE_HEADER_BYTES + len ? "truncated" : "longer than its header says";
        goto out;
    }
    if (memcmp(head + 24, key->digest, 32) != 0) {
        why = "holds another key";
        goto out;
    }
    buf = malloc(len ? len : 1);
    if (!buf) {
        why = "too large to read";
        goto out;
    }
    for (size_t off = 0; off < len; off += (size_t)got)
        if ((got = read(fd, buf + off, len - off)) <= 0) {
            why = "truncated while reading";
            goto out;
        }
    uint8_t sum[32];
    rt_sha256(buf, len, sum);
    if (memcmp(sum, head + 56, 32) != 0) {
        why = "checksum mismatch";
        goto out;
    }
    close(fd);
    free(path);
    count(c, &c->stats.hits);
    *data = buf;
    *size = len;
    return true;
out:
    close(fd);
    free(buf);
    corrupt(c, key, path, why, d);
    count(c, &c->stats.misses);
    free(path);
    return false;
}

static bool write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

bool rt_kcache_put(KCache *c, const KCacheKey *key, const void *data, size_t size, Diag *d) {
    if (!c) return false;
    pthread_mutex_lock(&c->mu);
    bool skip = c->write_failed;
    if (skip) c->stats.store_failures++;
    pthread_mutex_unlock(&c->mu);
    if (skip) return false;
    char *path = rt_kcache_entry_path(c, key), *sub = NULL, *tmp = NULL;
    bool ok = false;
    int fd = -1;
    if (!path || asprintf(&sub, "%s/%.2s", c->dir, key->hex) < 0 || asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
        sub = tmp = NULL;
        goto done;
    }
    if (mkdir(sub, 0777) != 0 && errno != EEXIST) goto done;
    fd = mkstemp(tmp);
    if (fd < 0) goto done;
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);
    uint8_t head[KCACHE_HEADER_BYTES] = {0};
    memcpy(head, MAGIC, 8);
    put_u32(head + 8, KCACHE_FORMAT);
    put_u64(head + 16, size);
    memcpy(head + 24, key->digest, 32);
    rt_sha256(data, size, head + 56);
    ok = write_all(fd, head, sizeof head) && write_all(fd, data, size);
    ok = close(fd) == 0 && ok;
    fd = -1;
    ok = ok && rename(tmp, path) == 0;
done:
    if (!ok) {
        int err = errno;
        if (fd >= 0) close(fd);
        if (tmp) unlink(tmp);
        pthread_mutex_lock(&c->mu);
        bool first = !c->write_failed;
        c->write_failed = true;
        pthread_mutex_unlock(&c->mu);
        if (first)
            diag_warning(d, loc_file(path ? path : c->dir),
                         "kernel cache: cannot store an entry (%s); not storing more this time", strerror(err));
    }
    count(c, ok ? &c->stats.stores : &c->stats.store_failures);
    free(path);
    free(sub);
    free(tmp);
    return ok;
}
