/* cuBLASLt, loaded at run time with dlopen: the CUDA backend's library GEMM
 * tactic (docs/cuda.md, "cuBLASLt").
 *
 * dsc links no CUDA library.  The first call opens $DSC_LIBCUBLASLT if set
 * (and only it), else libcublasLt.so.13, libcublasLt.so.12, libcublasLt.so,
 * and resolves every entry point it uses once (cublasLtGetStatusString and
 * cublasLtGetStatusName only if present).  Where there is no library,
 * rt_cublaslt_available says why and every other call fails with that reason;
 * nothing crashes.  The types and enum values are declared here, copied from
 * cublasLt.h / cublas_api.h / library_types.h (checked against them at
 * compile time where the build has the headers), so no header is needed.
 *
 * The GEMM is described in dsc's row-major terms (RtGemmShape) and mapped to
 * cuBLASLt's column-major convention inside: a row-major D = A B (M x N) is
 * the column-major D^T (N x M) = B^T A^T, so cuBLASLt's "A" is dsc's B and
 * its "B" is dsc's A, its rows are dsc's n, and a bias vector over n is
 * cuBLASLt's bias over the rows of D -- the broadcast cuBLASLt's epilogues
 * use.
 *
 * Every call is checked; a failure is one error naming the function and the
 * status, e.g. "cublasLtMatmul failed: CUBLAS_STATUS_EXECUTION_FAILED (the
 * GPU program failed to execute)"; callers prefix the kernel. */
#ifndef DSC_RUNTIME_CUBLASLT_H
#define DSC_RUNTIME_CUBLASLT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../ir/diag.h"
#include "../ir/ir.h"
#include "cuda_driver.h"

/* True if the library was loaded and has every entry point; otherwise false
 * with the reason in `why` (if non-NULL), e.g. "libcublasLt.so.13 not found:
 * ... (also tried libcublasLt.so.12, libcublasLt.so)". */
bool rt_cublaslt_available(char *why, size_t n);
/* The library that was loaded, or NULL. */
const char *rt_cublaslt_library(void);
/* cublasLtGetVersion (120805 = 12.8.5), or 0. */
size_t rt_cublaslt_version(void);

typedef enum {
    RT_GEMM_EPI_NONE,
    RT_GEMM_EPI_BIAS,           /* + bias[n] */
    RT_GEMM_EPI_RELU,           /* relu(.) */
    RT_GEMM_EPI_RELU_BIAS,      /* relu(. + bias[n]) */
    RT_GEMM_EPI_GELU_TANH,      /* gelu, tanh approximation (cuBLASLt's GELU) */
    RT_GEMM_EPI_GELU_TANH_BIAS, /* gelu_tanh(. + bias[n]) */
} RtGemmEpilogue;

const char *rt_gemm_epilogue_name(RtGemmEpilogue e); /* "bias", "relu+bias", ... */

/* D[b][m][n] = epi(sum_k A[b][m][k] B[b][k][n] (+ bias[n])) for b < batch,
 * element strides in dsc's terms (D's n stride is 1).  A and B are both f32,
 * both f16 or both bf16; D is their dtype or f32; f32 accumulation
 * (CUBLAS_COMPUTE_32F: never TF32). */
typedef struct {
    DType ab, d, bias; /* bias: DT_COUNT without one */
    int64_t m, n, k;
    int64_t sam, sak; /* A(m, k) */
    int64_t sbk, sbn; /* B(k, n) */
    int64_t sdm;      /* D(m, n), n contiguous */
    int64_t batch;    /* >= 1 */
    int64_t sab, sbb, sdb;
    RtGemmEpilogue epi;
    unsigned
        align; /* the smallest alignment in bytes of the A, B, D and bias pointers it will be used with */
} RtGemmShape;

/* Whether the shape can be expressed as cuBLASLt layouts at all (strides,
 * leading dimensions); false with the reason. */
bool rt_gemm_shape_expressible(const RtGemmShape *s, char *why, size_t n);

typedef struct RtBlasHandle RtBlasHandle;
typedef struct RtGemmOp RtGemmOp;

/* cublasLtCreate / cublasLtDestroy (the current context's device). */
bool rt_cublaslt_create(RtBlasHandle **h, Diag *d);
bool rt_cublaslt_destroy(RtBlasHandle *h, Diag *d);

/* Creates the descriptors and layouts of the shape and asks the heuristic for
 * an algorithm using at most `workspace` bytes.  When the heuristic finds none
 * it returns true with *op NULL and the reason in `why` (the shape is not
 * supported: the caller keeps its own kernel); a failed call is an error. */
bool rt_gemm_op_create(RtBlasHandle *h, const RtGemmShape *s, size_t workspace, RtGemmOp **op, char *why,
                       size_t n, Diag *d);
/* Enqueues the GEMM on `stream`.  bias is 0 without one. */
bool rt_gemm_op_run(RtBlasHandle *h, RtGemmOp *op, RtCuDevptr a, RtCuDevptr b, RtCuDevptr dst,
                    RtCuDevptr bias, RtCuDevptr workspace, size_t workspace_bytes, RtCuStream stream,
                    Diag *d);
/* Destroys the descriptors (every failure reported). */
bool rt_gemm_op_destroy(RtGemmOp *op, Diag *d);

#endif
