/* Status strings and version of the public API (include/dsc.h). */
#include "dsc.h"

const char *dsc_status_str(dsc_status s) {
    static const char *names[DSC_STATUS_COUNT] = {
        [DSC_OK] = "ok",
        [DSC_ERR_INVALID_ARGUMENT] = "invalid argument",
        [DSC_ERR_DIAGNOSTICS] = "the model has errors",
        [DSC_ERR_IO] = "input/output error",
        [DSC_ERR_FORMAT] = "corrupt or unsupported file",
        [DSC_ERR_RUNTIME] = "run-time error",
        [DSC_ERR_NO_MEMORY] = "out of memory",
        [DSC_ERR_NO_DEVICE] = "no usable device",
        [DSC_ERR_SHAPE] = "an input's shape does not fit the model",
    };
    return (unsigned)s < DSC_STATUS_COUNT ? names[s] : "unknown status";
}

const char *dsc_version(void) { return DSC_VERSION; }
