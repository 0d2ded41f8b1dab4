/* The persistent compiled-kernel cache, shared by the backends (CUDA cubins,
 * host JIT objects).
 *
 * A cache entry is an opaque payload found by a key.  The key is the SHA-256
 * of a canonical key text that the backend builds with the KCacheKey
 * functions: a list of named fields, each written as `name <len>\n<bytes>\n`,
 * so no two field lists give the same text.  A backend puts into the key
 * everything the payload depends on -- for CUDA the kernel source, the NVRTC
 * options, the architecture, the NVRTC version and the hwdb version (see
 * docs/cuda.md) -- and the cache never has to understand any of it.
 *
 * Where: $DSC_CACHE_DIR if set, else $XDG_CACHE_HOME/dsc (an absolute
 * XDG_CACHE_HOME), else $HOME/.cache/dsc.  DSC_CACHE=0 turns the cache off.
 * An entry with key K is DIR/<K[0:2]>/<K>.dsck (K in lowercase hex).
 *
 * Entry file: an 88-byte header, then the payload.
 *     0  magic "DSCKCACH" (8 bytes)
 *     8  format version, u32 little-endian (KCACHE_FORMAT)
 *    12  reserved, u32 (0)
 *    16  payload length in bytes, u64 little-endian
 *    24  the entry's key (32 bytes: SHA-256 of the key text)
 *    56  SHA-256 of the payload (32 bytes)
 *    88  payload
 * A reader checks all of it; a file that is short, too long, of another
 * format version, of another key or whose checksum does not match is corrupt:
 * it is reported once (a warning naming the file and what is wrong), removed,
 * and the lookup is a miss, so the caller rebuilds and rewrites it.
 *
 * Writers never expose half-written files: the entry goes to a temporary file
 * in the entry's directory that is renamed over the entry when complete.
 * Any number of processes and threads may read and write the same entries at
 * once; two writers of one key both rename a complete file (the last one
 * wins, and both hold the same payload).  No fsync: a crash can at worst
 * leave an entry that fails its checksum, which is detected and rebuilt.
 * The cache never evicts; deleting the directory (or any entry) is always
 * safe. */
#ifndef DSC_RUNTIME_KCACHE_H
#define DSC_RUNTIME_KCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../ir/diag.h"

enum { KCACHE_FORMAT = 1, KCACHE_HEADER_BYTES = 88 };

/* ---- SHA-256 ----------------------------------------------------------------- */

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} Sha256;

void rt_sha256_init(Sha256 *s);
void rt_sha256_update(Sha256 *s, const void *data, size_t n);
void rt_sha256_final(Sha256 *s, uint8_t out[32]);
void rt_sha256(const void *data, size_t n, uint8_t out[32]);
/* 64 lowercase hex digits and a NUL. */
void rt_hex(const uint8_t *bytes, size_t n, char *out);

/* ---- keys -------------------------------------------------------------------- */

typedef struct {
    Sha256 sha;
    uint8_t digest[32]; /* valid after rt_kcache_key_finish */
    char hex[65];
} KCacheKey;

/* Starts a key for a kind of entry ("cuda-cubin"). */
void rt_kcache_key_begin(KCacheKey *k, const char *kind);
/* Appends the field `name` with `n` bytes of value. */
void rt_kcache_key_add(KCacheKey *k, const char *name, const void *value, size_t n);
void rt_kcache_key_add_str(KCacheKey *k, const char *name, const char *value);
void rt_kcache_key_add_int(KCacheKey *k, const char *name, long long value);
void rt_kcache_key_finish(KCacheKey *k);

/* ---- the cache --------------------------------------------------------------- */

typedef struct KCache KCache;

/* Opens the cache at `dir`, or (dir NULL) where the environment says.  Returns
 * NULL without a message when the cache is turned off (DSC_CACHE=0) and NULL
 * with a warning in d when its directory cannot be found or created; every
 * other function accepts a NULL cache (and then always misses and stores
 * nothing), so a caller never needs a special case. */
KCache *rt_kcache_open(const char *dir, Diag *d);
void rt_kcache_close(KCache *c);
/* The directory, or NULL for a NULL cache. */
const char *rt_kcache_dir(const KCache *c);
/* The directory the environment selects (NULL: cache off), and how:
 * "DSC_CACHE_DIR", "XDG_CACHE_HOME", "HOME" or "DSC_CACHE=0"; a new string. */
char *rt_kcache_default_dir(const char **how);
/* The path of an entry (a new string). */
char *rt_kcache_entry_path(const KCache *c, const KCacheKey *key);

/* Looks up an entry.  True on a hit, with *data (malloc'd, the caller frees)
 * and *size.  A corrupt entry is reported as a warning, removed and missed. */
bool rt_kcache_get(KCache *c, const KCacheKey *key, void **data, size_t *size, Diag *d);
/* Stores an entry (replacing any).  On failure returns false; the first
 * failure of a handle is reported as a warning and later stores through it
 * are skipped (a read-only cache is one message, not one per kernel).  A
 * cache that cannot be written never fails a compilation. */
bool rt_kcache_put(KCache *c, const KCacheKey *key, const void *data, size_t size, Diag *d);

/* Counters since open (for tests and --stats). */
typedef struct {
    int hits, misses, corrupt, stores, store_failures;
} KCacheStats;
KCacheStats rt_kcache_stats(const KCache *c);

#endif
