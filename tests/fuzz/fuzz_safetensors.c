/* libFuzzer target for the safetensors reader.
 *
 * Feeds each input to st_open_mem, which runs exactly the validation st_open
 * runs on a mapped file.  On success every tensor is looked up by name and
 * index and its view checked against its dtype and shape, and its bytes are
 * touched so ASan would see a view that points outside the input; on failure
 * there must be an error.  Seed corpus: tests/data/corrupt and
 * tests/data/safetensors. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Diag *d = diag_create();
    SafeTensors *st = st_open_mem(data, size, "fuzz.safetensors", d);
    if (st) {
        if (diag_error_count(d) != 0) abort();
        volatile unsigned sum = 0;
        for (int i = 0; i < st_count(st); i++) {
            Tensor a, b;
            const char *name = st_name(st, i);
            if (!name || !st_get(st, name, &a) || !st_get_index(st, i, &b) || a.data != b.data) abort();
            int64_t n = rt_numel(a.rank, a.shape);
            if (n < 0 || (size_t)n * (size_t)dtype_size(a.dtype) != a.nbytes || a.owned) abort();
            if ((uintptr_t)a.data % (uintptr_t)dtype_size(a.dtype) != 0) abort();
            const unsigned char *p = a.data;
            for (size_t k = 0; k < a.nbytes; k++)
                sum += p[k];
        }
        for (int i = 0; i < st_metadata_count(st); i++) {
            const char *k = st_metadata_key(st, i);
            if (!k || !st_metadata(st, k)) abort();
        }
        (void)sum;
        st_close(st);
    } else if (diag_error_count(d) == 0) {
        abort();
    }
    diag_destroy(d);
    return 0;
}
