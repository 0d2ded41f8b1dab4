/* libFuzzer target for the .npy reader.
 *
 * Feeds each input to npy_read_mem as a whole file.  The reader must either
 * return a tensor whose size agrees with its dtype and shape, or NULL with at
 * least one error; ASan/UBSan (enabled by -DDSC_FUZZ=ON) catch any read out
 * of bounds, overflow or leak.  Seed corpus: tests/data/corrupt and tests/data/npy. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "runtime/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Diag *d = diag_create();
    Tensor *t = npy_read_mem(data, size, "fuzz.npy", d);
    if (t) {
        int64_t n = rt_numel(t->rank, t->shape);
        if (n < 0 || (size_t)n * (size_t)dtype_size(t->dtype) != t->nbytes || diag_error_count(d) != 0)
            abort();
        for (int64_t i = 0; i < n && i < 64; i++)
            (void)rt_get(t, i);
        rt_tensor_free(t);
    } else if (diag_error_count(d) == 0) {
        abort(); /* a refusal must say why */
    }
    diag_destroy(d);
    return 0;
}
