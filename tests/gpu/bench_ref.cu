// Reference measurements for tests/gpu/run.sh: what this GPU actually does,
// taken in the same run as dsc's kernels so the tables compare like with like.
//
//   copy    cudaMemcpyAsync device-to-device of a buffer much larger than L2;
//           GB/s counts bytes read plus bytes written (2 x size / time), the
//           convention of the achieved-bandwidth column for dsc's kernels
//   gemm    cublasGemmEx, M = N = K = 8192 by default, on random data (zeros
//           run faster on tensor cores and would overstate the ceiling):
//             f16   A, B, C f16, f32 accumulation (CUBLAS_COMPUTE_32F)
//             bf16  A, B, C bf16, f32 accumulation
//             tf32  A, B, C f32, CUBLAS_COMPUTE_32F_FAST_TF32
//             f32   A, B, C f32, CUBLAS_COMPUTE_32F (no tensor cores)
//           TFLOP/s = 2 M N K / time
//
// Each measurement: warm-ups, then the mean over timed repetitions between
// CUDA events.  Output: one "key value" line per figure (value "FAILED" and
// exit status 1 if any call fails, never a guessed number), e.g.
//     device NVIDIA H200
//     copy_d2d_gbs 4312.7
//     gemm_f16_tflops 771.3
// Extra GEMM shapes (for per-kernel comparisons): --gemm MxNxK:dtype ...
//     gemm_f16_512x768x3072_tflops 402.1
//
// Build: nvcc -O3 -std=c++17 -arch=sm_XX bench_ref.cu -lcublas -o bench_ref
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static bool g_failed = false;

#define CUDA_OK(call)                                                                                        \
    ([&]() {                                                                                                 \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess) {                                                                             \
            fprintf(stderr, "bench_ref: %s failed: %s (%s)\n", #call, cudaGetErrorName(e_),                 \
                    cudaGetErrorString(e_));                                                                 \
            g_failed = true;                                                                                 \
            return false;                                                                                    \
        }                                                                                                    \
        return true;                                                                                         \
    }())

#define CUBLAS_OK(call)                                                                                      \
    ([&]() {                                                                                                 \
        cublasStatus_t s_ = (call);                                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                                   \
            fprintf(stderr, "bench_ref: %s failed: %s (%s)\n", #call, cublasGetStatusName(s_),              \
                    cublasGetStatusString(s_));                                                              \
            g_failed = true;                                                                                 \
            return false;                                                                                    \
        }                                                                                                    \
        return true;                                                                                         \
    }())

// Uniform values in [-1, 1) from a hash of the index (no cuRAND needed).
template <typename T> __global__ void fill_random(T *p, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned x = (unsigned)i * 2654435761u ^ seed;
        x ^= x >> 16;
        x *= 0x7feb352du;
        x ^= x >> 15;
        x *= 0x846ca68bu;
        x ^= x >> 16;
        float v = (float)(x >> 8) * (2.0f / 16777216.0f) - 1.0f;
        p[i] = (T)v;
    }
}

template <typename T> static bool fill(T *p, size_t n, unsigned seed) {
    fill_random<T><<<1024, 256>>>(p, n, seed);
    return CUDA_OK(cudaGetLastError()) && CUDA_OK(cudaDeviceSynchronize());
}

// Mean milliseconds of `reps` calls of f after `warm` untimed ones.
template <typename F> static bool time_ms(F f, int warm, int reps, float *ms) {
    cudaEvent_t a, b;
    if (!CUDA_OK(cudaEventCreate(&a)) || !CUDA_OK(cudaEventCreate(&b))) return false;
    bool ok = true;
    for (int i = 0; i < warm && ok; i++) ok = f();
    ok = ok && CUDA_OK(cudaDeviceSynchronize()) && CUDA_OK(cudaEventRecord(a));
    for (int i = 0; i < reps && ok; i++) ok = f();
    ok = ok && CUDA_OK(cudaEventRecord(b)) && CUDA_OK(cudaEventSynchronize(b));
    float total = 0;
    ok = ok && CUDA_OK(cudaEventElapsedTime(&total, a, b));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    *ms = total / reps;
    return ok;
}

static void report(const char *key, bool ok, double value) {
    if (ok)
        printf("%s %.1f\n", key, value);
    else
        printf("%s FAILED\n", key);
    fflush(stdout);
}

static void bench_copy(size_t bytes) {
    void *src = nullptr, *dst = nullptr;
    float ms = 0;
    bool ok = CUDA_OK(cudaMalloc(&src, bytes)) && CUDA_OK(cudaMalloc(&dst, bytes)) &&
              CUDA_OK(cudaMemset(src, 1, bytes)) &&
              time_ms([&] { return CUDA_OK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice)); }, 3, 20,
                      &ms);
    report("copy_d2d_gbs", ok, 2.0 * (double)bytes / (ms * 1e-3) / 1e9);
    cudaFree(src);
    cudaFree(dst);
}

struct GemmType {
    const char *name;
    cudaDataType_t data;
    cublasComputeType_t compute;
    size_t elem;
};

static const GemmType TYPES[] = {
    {"f16", CUDA_R_16F, CUBLAS_COMPUTE_32F, 2},
    {"bf16", CUDA_R_16BF, CUBLAS_COMPUTE_32F, 2},
    {"tf32", CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, 4},
    {"f32", CUDA_R_32F, CUBLAS_COMPUTE_32F, 4},
};

static const GemmType *find_type(const char *name) {
    for (const GemmType &t : TYPES)
        if (strcmp(t.name, name) == 0) return &t;
    return nullptr;
}

static void bench_gemm(cublasHandle_t h, const GemmType &t, int m, int n, int k, const char *key) {
    void *a = nullptr, *b = nullptr, *c = nullptr;
    float ms = 0, alpha = 1, beta = 0;
    size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
    bool ok = CUDA_OK(cudaMalloc(&a, na * t.elem)) && CUDA_OK(cudaMalloc(&b, nb * t.elem)) &&
              CUDA_OK(cudaMalloc(&c, nc * t.elem));
    if (ok && t.elem == 2 && t.data == CUDA_R_16F)
        ok = fill((__half *)a, na, 1) && fill((__half *)b, nb, 2);
    else if (ok && t.elem == 2)
        ok = fill((__nv_bfloat16 *)a, na, 1) && fill((__nv_bfloat16 *)b, nb, 2);
    else if (ok)
        ok = fill((float *)a, na, 1) && fill((float *)b, nb, 2);
    // column-major C[m,n] = A[m,k] B[k,n]
    ok = ok && time_ms(
                   [&] {
                       return CUBLAS_OK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, a, t.data, m, b,
                                                     t.data, k, &beta, c, t.data, m, t.compute,
                                                     CUBLAS_GEMM_DEFAULT));
                   },
                   3, 10, &ms);
    report(key, ok, 2.0 * m * (double)n * k / (ms * 1e-3) / 1e12);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
}

int main(int argc, char **argv) {
    int size = 8192;
    size_t copy_mb = 2048;
    std::vector<std::string> shapes;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (strcmp(argv[i], "--copy-mb") == 0 && i + 1 < argc)
            copy_mb = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--gemm") == 0 && i + 1 < argc)
            shapes.push_back(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_ref [--size N] [--copy-mb MB] [--gemm MxNxK:dtype]...\n");
            return 2;
        }
    }
    int dev = 0;
    cudaDeviceProp p;
    if (!CUDA_OK(cudaGetDevice(&dev)) || !CUDA_OK(cudaGetDeviceProperties(&p, dev))) return 1;
    printf("device %s\n", p.name);
    printf("compute_capability %d.%d\n", p.major, p.minor);
    printf("sms %d\n", p.multiProcessorCount);
    printf("l2_mb %.1f\n", p.l2CacheSize / (1024.0 * 1024.0));
    int rt = 0, drv = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    printf("cuda_runtime %d\ncuda_driver %d\n", rt, drv);
    int cublas_version = 0;
    cublasHandle_t h;
    if (!CUBLAS_OK(cublasCreate(&h))) return 1;
    cublasGetVersion(h, &cublas_version);
    printf("cublas %d\n", cublas_version);
    fflush(stdout);

    bench_copy(copy_mb << 20);
    for (const GemmType &t : TYPES) {
        std::string key = std::string("gemm_") + t.name + "_tflops";
        bench_gemm(h, t, size, size, size, key.c_str());
    }
    for (const std::string &s : shapes) {
        int m, n, k;
        char type[16];
        const GemmType *t = nullptr;
        if (sscanf(s.c_str(), "%dx%dx%d:%15s", &m, &n, &k, type) != 4 || !(t = find_type(type)) || m < 1 ||
            n < 1 || k < 1) {
            fprintf(stderr, "bench_ref: bad --gemm '%s' (want MxNxK:f16|bf16|tf32|f32)\n", s.c_str());
            g_failed = true;
            continue;
        }
        std::string key = "gemm_" + std::string(type) + "_" + std::to_string(m) + "x" + std::to_string(n) + "x" +
                          std::to_string(k) + "_tflops";
        bench_gemm(h, *t, m, n, k, key.c_str());
    }
    cublasDestroy(h);
    return g_failed ? 1 : 0;
}
