/* Arena allocation: one arena per compilation, freed at once.
 *
 * Every AST node, IR node, attribute and string of one compilation lives in an
 * arena, so error paths never leak and nothing needs a per-object destructor.
 * Allocation is a pointer bump inside 64 KiB chunks; large requests get their
 * own chunk.  Memory is zeroed. */
#ifndef DSC_IR_ARENA_H
#define DSC_IR_ARENA_H

#include <stddef.h>

typedef struct Arena Arena;

Arena *arena_create(void);
void arena_destroy(Arena *a);
/* Zeroed memory aligned for any object; never returns NULL (aborts on OOM
 * through DSC_ASSERT, the one place the library stops: allocation failure). */
void *arena_alloc(Arena *a, size_t size);
/* Copy of `old` (oldsize bytes) into a new block of newsize bytes. */
void *arena_grow(Arena *a, void *old, size_t oldsize, size_t newsize);
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Bytes handed out so far (for limits and statistics). */
size_t arena_used(const Arena *a);

/* Growable array of pointers in an arena: `VEC_PUSH(arena, items, n, cap, x)`. */
#define VEC_PUSH(arena, items, n, cap, x)                                                          \
    do {                                                                                           \
        if ((size_t)(n) == (size_t)(cap)) {                                                                        \
            size_t nc_ = (cap) ? (size_t)(cap)*2 : 8;                                              \
            (items) = arena_grow((arena), (items), sizeof(*(items)) * (size_t)(cap),               \
                                 sizeof(*(items)) * nc_);                                          \
            (cap) = nc_;                                                                           \
        }                                                                                          \
        (items)[(n)++] = (x);                                                                      \
    } while (0)

#endif
