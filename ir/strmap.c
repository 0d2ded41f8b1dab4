/* String hash map (see strmap.h): FNV-1a, linear probing, grows at 1/2 load. */
#include "strmap.h"

#include <stdint.h>
#include <string.h>

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void strmap_init(StrMap *m, Arena *a) {
    m->arena = a;
    m->cap = 8;
    m->len = 0;
    m->slots = arena_alloc(a, sizeof(StrMapSlot) * m->cap);
}

static StrMapSlot *find(const StrMap *m, const char *key) {
    size_t i = hash(key) & (m->cap - 1);
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0) i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

void *strmap_get(const StrMap *m, const char *key) {
    if (!m->slots) return NULL;
    StrMapSlot *s = find(m, key);
    return s->key ? s->value : NULL;
}

void strmap_put(StrMap *m, const char *key, void *value) {
    StrMapSlot *s = find(m, key);
    if (s->key) {
        s->value = value;
        return;
    }
    *s = (StrMapSlot){key, value};
    if (++m->len * 2 <= m->cap) return;
    StrMapSlot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = arena_alloc(m->arena, sizeof(StrMapSlot) * m->cap);
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key) *find(m, old[i].key) = old[i];
}
