// CUDA kernels of GroupConv (see groupconv.cc for the contract): direct loops, one thread per
// output element (forward), per input element (data gradient: it gathers from the output
// pixels that read it) and one block per weight (weight gradient, a block reduction in double).
// Compiled by nvcc without lib_api.h; launched on the stream MXNet passes to the operator.
#include <cstdint>
#include <cuda_runtime.h>

#include "gm_cuda.h"

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void forward_kernel(gm_gc_geom g, const T* __restrict__ x, const T* __restrict__ w,
                               T* __restrict__ y) {
  const int64_t total = g.N * g.F * g.OH * g.OW, Cg = g.C / g.G, Og = g.F / g.G;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, f = (i / (g.OW * g.OH)) % g.F,
                  n = i / (g.OW * g.OH * g.F), gi = f / Og;
    T s = 0;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.sh + ky - g.ph;
        if (iy < 0 || iy >= g.H) continue;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.sw + kx - g.pw;
          if (ix < 0 || ix >= g.W) continue;
          s += w[((f * Cg + c) * g.kh + ky) * g.kw + kx] *
               x[((n * g.C + gi * Cg + c) * g.H + iy) * g.W + ix];
        }
      }
    y[i] = s;
  }
}

template <typename T>
__global__ void data_grad_kernel(gm_gc_geom g, const T* __restrict__ dy,
                                 const T* __restrict__ w, T* __restrict__ dx) {
  const int64_t total = g.N * g.C * g.H * g.W, Cg = g.C / g.G, Og = g.F / g.G;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t ix = i % g.W, iy = (i / g.W) % g.H, ci = (i / (g.W * g.H)) % g.C,
                  n = i / (g.W * g.H * g.C), gi = ci / Cg, c = ci - gi * Cg;
    T s = 0;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t ty = iy + g.ph - ky;  // = oy * sh
      if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.OH) continue;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t tx = ix + g.pw - kx;
        if (tx < 0 || tx % g.sw != 0 || tx / g.sw >= g.OW) continue;
        for (int64_t o = 0; o < Og; ++o) {
          const int64_t f = gi * Og + o;
          s += w[((f * Cg + c) * g.kh + ky) * g.kw + kx] *
               dy[((n * g.F + f) * g.OH + ty / g.sh) * g.OW + tx / g.sw];
        }
      }
    }
    dx[i] = s;
  }
}

// Block b computes weight element b = ((f * Cg + c) * kh + ky) * kw + kx.
template <typename T>
__global__ void weight_grad_kernel(gm_gc_geom g, const T* __restrict__ x,
                                   const T* __restrict__ dy, T* __restrict__ dw) {
  __shared__ double part[kThreads];
  const int64_t Cg = g.C / g.G, Og = g.F / g.G, b = blockIdx.x;
  const int64_t kx = b % g.kw, ky = (b / g.kw) % g.kh, c = (b / (g.kw * g.kh)) % Cg,
                f = b / (g.kw * g.kh * Cg), gi = f / Og;
  const int64_t pixels = g.N * g.OH * g.OW;
  double s = 0;
  for (int64_t p = threadIdx.x; p < pixels; p += blockDim.x) {
    const int64_t ox = p % g.OW, oy = (p / g.OW) % g.OH, n = p / (g.OW * g.OH);
    const int64_t iy = oy * g.sh + ky - g.ph, ix = ox * g.sw + kx - g.pw;
    if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) continue;
    s += static_cast<double>(dy[((n * g.F + f) * g.OH + oy) * g.OW + ox]) *
         static_cast<double>(x[((n * g.C + gi * Cg + c) * g.H + iy) * g.W + ix]);
  }
  part[threadIdx.x] = s;
  __syncthreads();
  for (int h = blockDim.x / 2; h > 0; h /= 2) {
    if (threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) dw[b] = static_cast<T>(part[0]);
}

unsigned blocks_for(int64_t total) {
  int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks > 65535 * 16 ? 65535 * 16 : blocks);
}

template <typename T>
int launch(int kind, const gm_gc_geom& g, const void* a, const void* w, void* b,
           cudaStream_t stream) {
  if (kind == 0) {
    const int64_t total = g.N * g.F * g.OH * g.OW;
    if (total == 0) return 0;
    forward_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
        g, static_cast<const T*>(a), static_cast<const T*>(w), static_cast<T*>(b));
  } else if (kind == 1) {
    const int64_t total = g.N * g.C * g.H * g.W;
    if (total == 0) return 0;
    data_grad_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
        g, static_cast<const T*>(a), static_cast<const T*>(w), static_cast<T*>(b));
  } else {
    const int64_t weights = g.F * (g.C / g.G) * g.kh * g.kw;
    if (weights == 0) return 0;
    weight_grad_kernel<T><<<static_cast<unsigned>(weights), kThreads, 0, stream>>>(
        g, static_cast<const T*>(a), static_cast<const T*>(w), static_cast<T*>(b));
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" int gm_gc_pass_gpu(int elem, int kind, const gm_gc_geom* g, const void* a,
                              const void* w, void* b, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (elem) {
    case 4: return launch<float>(kind, *g, a, w, b, s);
    case 8: return launch<double>(kind, *g, a, w, b, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}
