/* dsc — the public C API.
 *
 * This is the only public header.  It currently exposes the version and the
 * status codes shared by the library and the `dsc` tool; the model-loading and
 * session API (opaque handles with create/destroy pairs) is added by the
 * runtime-API work (see docs/api.md when it lands). */
#ifndef DSC_H
#define DSC_H

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes.  Append only. */
typedef enum {
    DSC_OK = 0,
    DSC_ERR_INVALID_ARGUMENT, /* a bad argument or option */
    DSC_ERR_DIAGNOSTICS,      /* the model has errors; see the diagnostics */
    DSC_ERR_IO,               /* a file could not be read or written */
    DSC_ERR_FORMAT,           /* a file is corrupt or of a foreign or unsupported version */
    DSC_ERR_RUNTIME,          /* an error while running a model (shapes, bounds, indices) */
    DSC_ERR_NO_MEMORY,
    DSC_ERR_NO_DEVICE,
    DSC_STATUS_COUNT
} dsc_status;

/* A static English description of a status ("ok", "invalid argument", ...). */
const char *dsc_status_str(dsc_status status);

/* The library version, "MAJOR.MINOR.PATCH". */
const char *dsc_version(void);

#ifdef __cplusplus
}
#endif

#endif
