// CUDA kernels of ISqrtCov (see isqrtcov.cc for the algorithm): the element-wise and reduction
// steps of one image; its matrix products use the tiled GEMM of fmconv_kernels.cu. Compiled by
// nvcc without lib_api.h; launched on the stream MXNet passes to the operator.
// Compile-checked only: no GPU was available where this was written.
#include <cstdint>
#include <cuda_runtime.h>

#include "gm_cuda.h"

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  if (b > 65535) b = 65535;  // grid-stride loops cover the rest
  return static_cast<unsigned>(b);
}

#define ISC_GRID_STRIDE(i, n)                                                  \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; \
       i < (n); i += static_cast<int64_t>(blockDim.x) * gridDim.x)

#define ISC_DISPATCH(elem, ...)  \
  do {                           \
    if ((elem) == 4) {           \
      using T = float;           \
      __VA_ARGS__;               \
    } else if ((elem) == 8) {    \
      using T = double;          \
      __VA_ARGS__;               \
    }                            \
    return static_cast<int>(cudaErrorInvalidValue); \
  } while (0)

int last_error() { return static_cast<int>(cudaGetLastError()); }

template <typename T>
__global__ void mirror_kernel(T* C, int64_t n) {
  ISC_GRID_STRIDE(idx, n * n) {
    const int64_t i = idx / n, j = idx % n;
    if (j < i) C[idx] = C[j * n + i];
  }
}

// One block per row: block-wide sum in double, then the centred row.
template <typename T>
__global__ void center_kernel(const T* x, int64_t M, T* Xc) {
  __shared__ double part[kThreads];
  const T* row = x + blockIdx.x * M;
  T* dst = Xc + blockIdx.x * M;
  double s = 0;
  for (int64_t m = threadIdx.x; m < M; m += blockDim.x) s += row[m];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  const T mean = static_cast<T>(part[0] / static_cast<double>(M));
  for (int64_t m = threadIdx.x; m < M; m += blockDim.x) dst[m] = row[m] - mean;
}

template <typename T>
__global__ void combo_kernel(int64_t n, T* out, T a, const T* X, T b, const T* Q, T c,
                             const T* R, T diag) {
  ISC_GRID_STRIDE(idx, n * n) {
    const int64_t i = idx / n, j = idx % n;
    T v = i == j ? diag : T(0);
    if (X) v += a * X[idx];
    if (Q) v += b * (Q[idx] + Q[j * n + i]);
    if (R) v += c * R[idx];
    out[idx] = v;
  }
}

// One block: sum_i a[i*stride] * b[i*stride] into *out (double).
template <typename T>
__global__ void sum_kernel(const T* a, const T* b, int64_t count, int64_t stride, double* out) {
  __shared__ double part[kThreads];
  double s = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const double v = a[i * stride];
    s += b ? v * b[i * stride] : v;
  }
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = part[0];
}

template <typename T>
__global__ void gather_kernel(const T* S, const int32_t* index, int64_t K, T* out) {
  ISC_GRID_STRIDE(k, K) { out[k] = S[index[k]]; }
}

template <typename T>
__global__ void scatter_kernel(const T* g, const int32_t* index, int64_t K, T* G) {
  ISC_GRID_STRIDE(k, K) { atomicAdd(G + index[k], g[k]); }
}

}  // namespace

extern "C" int gm_isc_mirror_gpu(int elem, void* C, int64_t n, void* stream) {
  ISC_DISPATCH(elem, {
    mirror_kernel<T><<<blocks_for(n * n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<T*>(C), n);
    return last_error();
  });
}

extern "C" int gm_isc_center_gpu(int elem, const void* x, int64_t C, int64_t M, void* Xc,
                                 void* stream) {
  if (C <= 0) return 0;
  ISC_DISPATCH(elem, {
    center_kernel<T><<<static_cast<unsigned>(C), kThreads, 0,
                       static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(x), M,
                                                            static_cast<T*>(Xc));
    return last_error();
  });
}

extern "C" int gm_isc_combo_gpu(int elem, int64_t n, void* out, double a, const void* X,
                                double b, const void* Q, double c, const void* R, double diag,
                                void* stream) {
  ISC_DISPATCH(elem, {
    combo_kernel<T><<<blocks_for(n * n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        n, static_cast<T*>(out), static_cast<T>(a), static_cast<const T*>(X), static_cast<T>(b),
        static_cast<const T*>(Q), static_cast<T>(c), static_cast<const T*>(R),
        static_cast<T>(diag));
    return last_error();
  });
}

extern "C" int gm_isc_sum_gpu(int elem, const void* a, const void* b, int64_t count,
                              int64_t stride, double* result, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  double* dev = nullptr;
  int err = static_cast<int>(cudaMallocAsync(reinterpret_cast<void**>(&dev), sizeof(double), s));
  if (err != 0) return err;
  if (elem == 4) {
    sum_kernel<float><<<1, kThreads, 0, s>>>(static_cast<const float*>(a),
                                            static_cast<const float*>(b), count, stride, dev);
  } else {
    sum_kernel<double><<<1, kThreads, 0, s>>>(static_cast<const double*>(a),
                                             static_cast<const double*>(b), count, stride, dev);
  }
  err = last_error();
  if (err == 0)
    err = static_cast<int>(cudaMemcpyAsync(result, dev, sizeof(double), cudaMemcpyDeviceToHost, s));
  const int freed = static_cast<int>(cudaFreeAsync(dev, s));
  if (err == 0) err = static_cast<int>(cudaStreamSynchronize(s));
  return err != 0 ? err : freed;
}

extern "C" int gm_isc_gather_gpu(int elem, const void* S, const int32_t* index, int64_t K,
                                 void* out, void* stream) {
  if (K <= 0) return 0;
  ISC_DISPATCH(elem, {
    gather_kernel<T><<<blocks_for(K), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(S), index, K, static_cast<T*>(out));
    return last_error();
  });
}

extern "C" int gm_isc_scatter_gpu(int elem, const void* g, const int32_t* index, int64_t K,
                                  int64_t n, void* G, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int err = static_cast<int>(cudaMemsetAsync(G, 0, static_cast<size_t>(n * n * elem), s));
  if (err != 0 || K <= 0) return err;
  ISC_DISPATCH(elem, {
    scatter_kernel<T><<<blocks_for(K), kThreads, 0, s>>>(static_cast<const T*>(g), index, K,
                                                          static_cast<T*>(G));
    return last_error();
  });
}

extern "C" int gm_isc_to_host(void* dst, const void* src, int64_t bytes) {
  if (bytes <= 0) return 0;
  return static_cast<int>(cudaMemcpy(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost));
}

extern "C" int gm_isc_copy_gpu(void* dst, const void* src, int64_t bytes, void* stream) {
  if (bytes <= 0) return 0;
  return static_cast<int>(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes),
                                          cudaMemcpyDeviceToDevice,
                                          static_cast<cudaStream_t>(stream)));
}
