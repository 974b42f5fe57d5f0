// CUDA kernel of the Reorder channel permutation (see reorder.cc for the contract).
// Compiled by nvcc without lib_api.h; launched on the stream MXNet passes to the operator.
#include <cstdint>
#include <cuda_runtime.h>

#include "gm_cuda.h"

namespace {

// One thread per output element; consecutive threads write consecutive addresses.
template <typename T>
__global__ void reorder_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t total,
                               int64_t C, int64_t inner, int64_t B, int64_t Q) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t s = i % inner;
    const int64_t rc = i / inner;       // n*C + c
    const int64_t n = rc / C, c = rc - n * C;
    const int64_t k = c / B, b = c - k * B;
    out[i] = in[(n * C + b * Q + k) * inner + s];
  }
}

template <typename T>
int launch(const void* in, void* out, int64_t outer, int64_t C, int64_t inner, int64_t B,
           cudaStream_t stream) {
  const int64_t total = outer * C * inner;
  if (total == 0) return 0;
  const int threads = 256;
  int64_t blocks = (total + threads - 1) / threads;
  if (blocks > 65535 * 16) blocks = 65535 * 16;
  reorder_kernel<T><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
      static_cast<const T*>(in), static_cast<T*>(out), total, C, inner, B, C / B);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" const char* gm_cuda_error_string(int err) {
  return cudaGetErrorString(static_cast<cudaError_t>(err));
}

extern "C" int gm_reorder_gpu(const void* in, void* out, int64_t outer, int64_t channels,
                              int64_t inner, int64_t branch_factor, int elem_size,
                              void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (elem_size) {
    case 2: return launch<uint16_t>(in, out, outer, channels, inner, branch_factor, s);
    case 4: return launch<uint32_t>(in, out, outer, channels, inner, branch_factor, s);
    case 8: return launch<uint64_t>(in, out, outer, channels, inner, branch_factor, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}
