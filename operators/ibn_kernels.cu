// CUDA kernels of the IBN operator (see ibn.cc for the contract). Compiled by nvcc without
// lib_api.h; launched on the stream MXNet passes to the operator. One block per statistic
// (an (n, c) plane of the IN group, or the N planes of a BN channel): a block reduction of
// shifted sums in double, then the fused normalisation (forward) or the data gradient
// (backward) by the same block.
#include <cstdint>
#include <cuda_runtime.h>

#include "gm_cuda.h"

namespace {

constexpr int kThreads = 256;

struct Layout {
  int64_t N, C, S, Ci, i0, b0;
  __device__ int64_t nci() const { return N * Ci; }
  // element e of statistic k -> offset in the (N, C, S) tensor
  __device__ int64_t offset(int64_t k, int64_t e) const {
    if (k < nci()) return ((k / Ci) * C + i0 + k % Ci) * S + e;
    const int64_t n = e / S, s = e - n * S;
    return (n * C + b0 + (k - nci())) * S + s;
  }
  __device__ int64_t count(int64_t k) const { return k < nci() ? S : N * S; }
  __device__ int64_t channel(int64_t k) const { return k < nci() ? k % Ci : k - nci(); }
};

// Sums a and b over the block; every thread gets the totals.
__device__ void block_sum2(double* a, double* b) {
  __shared__ double sa[kThreads], sb[kThreads];
  sa[threadIdx.x] = *a;
  sb[threadIdx.x] = *b;
  __syncthreads();
  for (int h = kThreads / 2; h > 0; h >>= 1) {
    if (threadIdx.x < h) {
      sa[threadIdx.x] += sa[threadIdx.x + h];
      sb[threadIdx.x] += sb[threadIdx.x + h];
    }
    __syncthreads();
  }
  *a = sa[0];
  *b = sb[0];
  __syncthreads();
}

template <typename T>
__global__ void forward_kernel(Layout L, const T* __restrict__ x, const T* ig, const T* ib,
                               const T* bg, const T* bb, const T* flag, const T* rm,
                               const T* rv, T* __restrict__ y, T* mean, T* var, double eps) {
  const int64_t k = blockIdx.x;
  const int64_t M = L.count(k), c = L.channel(k);
  const bool in_group = k < L.nci();
  const bool train = static_cast<double>(flag[0]) > 0.5;
  double mu, v;
  if (!in_group && !train) {
    mu = static_cast<double>(rm[c]);
    v = static_cast<double>(rv[c]);
  } else {
    const double shift = M > 0 ? static_cast<double>(x[L.offset(k, 0)]) : 0.0;
    double s1 = 0, s2 = 0;
    for (int64_t e = threadIdx.x; e < M; e += kThreads) {
      const double d = static_cast<double>(x[L.offset(k, e)]) - shift;
      s1 += d;
      s2 += d * d;
    }
    block_sum2(&s1, &s2);
    mu = M > 0 ? shift + s1 / M : 0.0;
    v = M > 0 ? fmax(0.0, (s2 - s1 * s1 / M) / M) : 0.0;
  }
  if (threadIdx.x == 0) {
    mean[k] = static_cast<T>(mu);
    var[k] = static_cast<T>(v);
  }
  const double g = in_group ? ig[c] : bg[c], b = in_group ? ib[c] : bb[c];
  const double a = g * rsqrt(v + eps);
  const T ta = static_cast<T>(a), tb = static_cast<T>(b - mu * a);
  for (int64_t e = threadIdx.x; e < M; e += kThreads) {
    const int64_t o = L.offset(k, e);
    y[o] = x[o] * ta + tb;
  }
}

template <typename T>
__global__ void backward_kernel(Layout L, const T* __restrict__ dy, const T* __restrict__ x,
                                const T* ig, const T* bg, const T* flag, const T* mean,
                                const T* var, T* __restrict__ dx, double* dg, double* db,
                                double eps) {
  const int64_t k = blockIdx.x;
  const int64_t M = L.count(k), c = L.channel(k);
  const bool in_group = k < L.nci();
  const bool train = static_cast<double>(flag[0]) > 0.5;
  const double mu = mean[k], inv = rsqrt(static_cast<double>(var[k]) + eps);
  double sdy = 0, sdyx = 0;
  for (int64_t e = threadIdx.x; e < M; e += kThreads) {
    const int64_t o = L.offset(k, e);
    const double g = dy[o];
    sdy += g;
    sdyx += g * (static_cast<double>(x[o]) - mu);
  }
  block_sum2(&sdy, &sdyx);
  if (threadIdx.x == 0) {
    dg[k] = sdyx * inv;
    db[k] = sdy;
  }
  const double gamma = in_group ? ig[c] : bg[c];
  const bool batch_stats = in_group || train;
  const double c1 = gamma * inv;
  const double c2 = batch_stats && M > 0 ? -gamma * inv * inv * inv * sdyx / M : 0.0;
  const double c3 = batch_stats && M > 0 ? -gamma * inv * sdy / M - c2 * mu : 0.0;
  const T t1 = static_cast<T>(c1), t2 = static_cast<T>(c2), t3 = static_cast<T>(c3);
  for (int64_t e = threadIdx.x; e < M; e += kThreads) {
    const int64_t o = L.offset(k, e);
    dx[o] = dy[o] * t1 + x[o] * t2 + t3;
  }
}

// One thread per channel of either group: parameter gradients from the per-statistic sums
// (IN: summed over the samples), and the running statistics of a training step.
template <typename T>
__global__ void finish_kernel(Layout L, int64_t Cb, const double* dg, const double* db,
                              const T* flag, const T* mean, const T* var, T* rm, T* rv,
                              T* dig, T* dib, T* dbg, T* dbb, double momentum) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t < L.Ci) {
    double sg = 0, sb = 0;
    for (int64_t n = 0; n < L.N; ++n) {
      sg += dg[n * L.Ci + t];
      sb += db[n * L.Ci + t];
    }
    dig[t] = static_cast<T>(sg);
    dib[t] = static_cast<T>(sb);
  } else if (t < L.Ci + Cb) {
    const int64_t c = t - L.Ci, k = L.N * L.Ci + c;
    dbg[c] = static_cast<T>(dg[k]);
    dbb[c] = static_cast<T>(db[k]);
    if (static_cast<double>(flag[0]) > 0.5 && L.N * L.S > 0) {
      rm[c] = static_cast<T>(momentum * rm[c] + (1 - momentum) * static_cast<double>(mean[k]));
      rv[c] = static_cast<T>(momentum * rv[c] + (1 - momentum) * static_cast<double>(var[k]));
    }
  }
}

Layout make_layout(int64_t N, int64_t C, int64_t S, int64_t Ci, int64_t i0, int64_t b0) {
  Layout L;
  L.N = N;
  L.C = C;
  L.S = S;
  L.Ci = Ci;
  L.i0 = i0;
  L.b0 = b0;
  return L;
}

template <typename T>
int forward(const void* x, const void* ig, const void* ib, const void* bg, const void* bb,
            const void* flag, const void* rm, const void* rv, void* y, void* mean, void* var,
            const Layout& L, int64_t K, double eps, cudaStream_t s) {
  if (K == 0) return 0;
  forward_kernel<T><<<static_cast<unsigned>(K), kThreads, 0, s>>>(
      L, static_cast<const T*>(x), static_cast<const T*>(ig), static_cast<const T*>(ib),
      static_cast<const T*>(bg), static_cast<const T*>(bb), static_cast<const T*>(flag),
      static_cast<const T*>(rm), static_cast<const T*>(rv), static_cast<T*>(y),
      static_cast<T*>(mean), static_cast<T*>(var), eps);
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int backward(const void* dy, const void* x, const void* ig, const void* bg, const void* flag,
             void* rm, void* rv, const void* mean, const void* var, void* dx, void* dig,
             void* dib, void* dbg, void* dbb, void* work, const Layout& L, int64_t Cb,
             int64_t K, double eps, double momentum, cudaStream_t s) {
  double* dg = static_cast<double*>(work);
  double* db = dg + K;
  if (K > 0) {
    backward_kernel<T><<<static_cast<unsigned>(K), kThreads, 0, s>>>(
        L, static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(ig),
        static_cast<const T*>(bg), static_cast<const T*>(flag), static_cast<const T*>(mean),
        static_cast<const T*>(var), static_cast<T*>(dx), dg, db, eps);
    int err = static_cast<int>(cudaGetLastError());
    if (err != 0) return err;
  }
  const int64_t channels = L.Ci + Cb;
  finish_kernel<T><<<static_cast<unsigned>((channels + kThreads - 1) / kThreads), kThreads, 0,
                     s>>>(L, Cb, dg, db, static_cast<const T*>(flag),
                          static_cast<const T*>(mean), static_cast<const T*>(var),
                          static_cast<T*>(rm), static_cast<T*>(rv), static_cast<T*>(dig),
                          static_cast<T*>(dib), static_cast<T*>(dbg), static_cast<T*>(dbb),
                          momentum);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" int gm_ibn_forward_gpu(int elem, const void* x, const void* in_gamma,
                                  const void* in_beta, const void* bn_gamma, const void* bn_beta,
                                  const void* flag, const void* run_mean, const void* run_var,
                                  void* y, void* mean, void* var, int64_t N, int64_t C,
                                  int64_t S, int64_t Ci, int64_t i0, int64_t b0, double eps,
                                  void* stream) {
  const Layout L = make_layout(N, C, S, Ci, i0, b0);
  const int64_t K = N * Ci + (C - Ci);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (elem == 8)
    return forward<double>(x, in_gamma, in_beta, bn_gamma, bn_beta, flag, run_mean, run_var, y,
                           mean, var, L, K, eps, s);
  if (elem == 4)
    return forward<float>(x, in_gamma, in_beta, bn_gamma, bn_beta, flag, run_mean, run_var, y,
                          mean, var, L, K, eps, s);
  return static_cast<int>(cudaErrorInvalidValue);
}

extern "C" int gm_ibn_backward_gpu(int elem, const void* dy, const void* x,
                                   const void* in_gamma, const void* bn_gamma, const void* flag,
                                   void* run_mean, void* run_var, const void* mean,
                                   const void* var, void* dx, void* d_in_gamma, void* d_in_beta,
                                   void* d_bn_gamma, void* d_bn_beta, void* work, int64_t N,
                                   int64_t C, int64_t S, int64_t Ci, int64_t i0, int64_t b0,
                                   double eps, double momentum, void* stream) {
  const Layout L = make_layout(N, C, S, Ci, i0, b0);
  const int64_t Cb = C - Ci, K = N * Ci + Cb;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (elem == 8)
    return backward<double>(dy, x, in_gamma, bn_gamma, flag, run_mean, run_var, mean, var, dx,
                            d_in_gamma, d_in_beta, d_bn_gamma, d_bn_beta, work, L, Cb, K, eps,
                            momentum, s);
  if (elem == 4)
    return backward<float>(dy, x, in_gamma, bn_gamma, flag, run_mean, run_var, mean, var, dx,
                           d_in_gamma, d_in_beta, d_bn_gamma, d_bn_beta, work, L, Cb, K, eps,
                           momentum, s);
  return static_cast<int>(cudaErrorInvalidValue);
}

// ---- Residual / ReLU helpers of the BNReLU operator (bnrelu.cc), which runs the kernels above
// with no IN group: y <- y + r (r may be null), then max(., 0) if relu, in place;
// out = dy where y > 0, else 0 (y null: out = dy).
namespace {

template <typename T>
__global__ void add_relu_kernel(T* y, const T* r, int relu, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T v = y[i];
    if (r) v += r[i];
    if (relu && !(v > T(0))) v = T(0);
    y[i] = v;
  }
}

template <typename T>
__global__ void relu_mask_kernel(const T* dy, const T* y, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = !y || y[i] > T(0) ? dy[i] : T(0);
}

unsigned grid_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 ? b : 65535);
}

}  // namespace

extern "C" int gm_add_relu_gpu(int elem, void* y, const void* r, int relu, int64_t n,
                               void* stream) {
  if (n <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (elem == 8)
    add_relu_kernel<double><<<grid_for(n), kThreads, 0, s>>>(
        static_cast<double*>(y), static_cast<const double*>(r), relu, n);
  else if (elem == 4)
    add_relu_kernel<float><<<grid_for(n), kThreads, 0, s>>>(
        static_cast<float*>(y), static_cast<const float*>(r), relu, n);
  else
    return static_cast<int>(cudaErrorInvalidValue);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int gm_relu_mask_gpu(int elem, const void* dy, const void* y, void* out, int64_t n,
                                void* stream) {
  if (n <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (elem == 8)
    relu_mask_kernel<double><<<grid_for(n), kThreads, 0, s>>>(
        static_cast<const double*>(dy), static_cast<const double*>(y),
        static_cast<double*>(out), n);
  else if (elem == 4)
    relu_mask_kernel<float><<<grid_for(n), kThreads, 0, s>>>(
        static_cast<const float*>(dy), static_cast<const float*>(y), static_cast<float*>(out),
        n);
  else
    return static_cast<int>(cudaErrorInvalidValue);
  return static_cast<int>(cudaGetLastError());
}
