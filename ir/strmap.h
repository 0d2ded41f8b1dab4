/* A string-keyed hash map in an arena (open addressing, no deletion).  Used for
 * scopes in the frontend and name uniqueness in the printer. */
#ifndef DSC_IR_STRMAP_H
#define DSC_IR_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"

typedef struct {
    const char *key;
    void *value;
} StrMapSlot;

typedef struct {
    Arena *arena;
    StrMapSlot *slots;
    size_t cap, len;
} StrMap;

void strmap_init(StrMap *m, Arena *a);
/* The value stored under key, or NULL. */
void *strmap_get(const StrMap *m, const char *key);
/* Stores (replacing any previous value).  The key is not copied. */
void strmap_put(StrMap *m, const char *key, void *value);

#endif
