/* Arena allocator: chunks linked in a list, bump allocation inside each. */
#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"

enum { CHUNK_SIZE = 64 * 1024, ALIGN = 16 };

typedef struct Chunk {
    struct Chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} Chunk;

struct Arena {
    Chunk *head;
    size_t total;
};

Arena *arena_create(void) {
    Arena *a = calloc(1, sizeof *a);
    DSC_ASSERT(a && "out of memory");
    return a;
}

void arena_destroy(Arena *a) {
    if (!a) return;
    for (Chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(a);
}

static Chunk *new_chunk(size_t size) {
    Chunk *c = calloc(1, sizeof(Chunk) + size);
    DSC_ASSERT(c && "out of memory");
    c->size = size;
    return c;
}

void *arena_alloc(Arena *a, size_t size) {
    size = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (size == 0) size = ALIGN;
    a->total += size;
    if (size > CHUNK_SIZE / 4) {
        /* Large block: its own chunk, linked behind the current head. */
        Chunk *c = new_chunk(size);
        c->used = size;
        if (a->head) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            a->head = c;
        }
        return c->data;
    }
    if (!a->head || a->head->size - a->head->used < size) {
        Chunk *c = new_chunk(CHUNK_SIZE);
        c->next = a->head;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += size;
    return p;
}

void *arena_grow(Arena *a, void *old, size_t oldsize, size_t newsize) {
    void *p = arena_alloc(a, newsize);
    if (old && oldsize) memcpy(p, old, oldsize < newsize ? oldsize : newsize);
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

char *arena_printf(Arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *tmp = NULL;
    int n = vasprintf(&tmp, fmt, ap);
    va_end(ap);
    DSC_ASSERT(n >= 0 && "out of memory");
    char *p = arena_strndup(a, tmp, (size_t)n);
    free(tmp);
    return p;
}

size_t arena_used(const Arena *a) { return a->total; }
