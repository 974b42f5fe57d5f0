// CUDA kernels of FMConvolution1/3 (see fmconv.cc for the maths and the pass structure).
// Compiled by nvcc without lib_api.h; launched on the stream MXNet passes to the operator.
// The local toolkit has no cuBLAS, so the GEMM is a plain shared-memory tiled kernel. Each
// launcher mirrors the CPU function of the same role in fmconv.cc (CpuBackend).
// Compile-checked only: no GPU was available where this was written.
#include <cstdint>
#include <cuda_runtime.h>

#include "gm_cuda.h"

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  if (b > 65535 * 32) b = 65535 * 32;  // grid-stride loops cover the rest
  return static_cast<unsigned>(b);
}

#define GRID_STRIDE(i, n)                                                      \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; \
       i < (n); i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// ---- GEMM: C = alpha op(A) op(B) + beta C, row-major, 64 x 64 tiles, 4 x 4 per thread -------
constexpr int kBM = 64, kBN = 64, kBK = 16;

template <typename T>
__global__ void gemm_kernel(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha,
                            const T* __restrict__ A, int64_t lda, const T* __restrict__ B,
                            int64_t ldb, T beta, T* __restrict__ C, int64_t ldc,
                            int64_t row_block0) {
  __shared__ T As[kBK][kBM];
  __shared__ T Bs[kBK][kBN];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int64_t row0 = (row_block0 + blockIdx.y) * kBM;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kBN;
  T acc[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    // A tile (kBM x kBK): consecutive threads read consecutive addresses of A.
    for (int i = tid; i < kBM * kBK; i += kThreads) {
      int mm, kk;
      if (ta) { mm = i % kBM; kk = i / kBM; } else { kk = i % kBK; mm = i / kBK; }
      const int64_t gr = row0 + mm, gk = k0 + kk;
      T v = T(0);
      if (gr < M && gk < K) v = ta ? A[gk * lda + gr] : A[gr * lda + gk];
      As[kk][mm] = v;
    }
    // B tile (kBK x kBN)
    for (int i = tid; i < kBK * kBN; i += kThreads) {
      int kk, nn;
      if (tb) { kk = i % kBK; nn = i / kBK; } else { nn = i % kBN; kk = i / kBN; }
      const int64_t gk = k0 + kk, gc = col0 + nn;
      T v = T(0);
      if (gk < K && gc < N) v = tb ? B[gc * ldb + gk] : B[gk * ldb + gc];
      Bs[kk][nn] = v;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      T a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i) {
    const int64_t r = row0 + ty + 16 * i;
    if (r >= M) continue;
    for (int j = 0; j < 4; ++j) {
      const int64_t c = col0 + tx + 16 * j;
      if (c >= N) continue;
      T v = alpha * acc[i][j];
      if (beta != T(0)) v += beta * C[r * ldc + c];  // beta == 0: C may be uninitialised
      C[r * ldc + c] = v;
    }
  }
}

template <typename T>
int gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
         const T* B, int64_t ldb, T beta, T* C, int64_t ldc, cudaStream_t s) {
  if (M <= 0 || N <= 0) return 0;
  const int64_t col_blocks = (N + kBN - 1) / kBN, row_blocks = (M + kBM - 1) / kBM;
  if (col_blocks > 0x7fffffffLL) return static_cast<int>(cudaErrorInvalidValue);
  for (int64_t rb = 0; rb < row_blocks; rb += 65535) {  // gridDim.y is limited to 65535
    const int64_t nrb = row_blocks - rb < 65535 ? row_blocks - rb : 65535;
    dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(nrb));
    gemm_kernel<T><<<grid, kThreads, 0, s>>>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C,
                                             ldc, rb);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return static_cast<int>(e);
  }
  return 0;
}

// ---- im2col / col2im ------------------------------------------------------------------------
template <typename T>
__global__ void im2col_kernel(gm_fm_geom g, const T* __restrict__ x, int64_t n0, int64_t nb,
                              int64_t gi, T* __restrict__ X, T* __restrict__ XX) {
  const int64_t S = nb * g.L, khw = g.kh * g.kw;
  GRID_STRIDE(i, g.K * S) {
    const int64_t r = i / S, s = i - r * S;
    const int64_t nl = s / g.L, l = s - nl * g.L;
    const int64_t oy = l / g.OW, ox = l - oy * g.OW;
    const int64_t c = r / khw, ky = (r / g.kw) % g.kh, kx = r % g.kw;
    const int64_t iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
    T v = T(0);
    if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W)
      v = x[(((n0 + nl) * g.C + gi * g.Cg + c) * g.H + iy) * g.W + ix];
    X[i] = v;
    XX[i] = v * v;
  }
}

// One thread per input pixel: gathers the taps that read it (no atomics, deterministic).
template <typename T>
__global__ void col2im_kernel(gm_fm_geom g, const T* __restrict__ dX, int64_t n0, int64_t nb,
                              int64_t gi, T* __restrict__ dx) {
  const int64_t S = nb * g.L, HW = g.H * g.W;
  GRID_STRIDE(i, nb * g.Cg * HW) {
    const int64_t nl = i / (g.Cg * HW);
    const int64_t rem = i - nl * g.Cg * HW;
    const int64_t c = rem / HW, p = rem - c * HW;
    const int64_t iy = p / g.W, ix = p - iy * g.W;
    T acc = T(0);
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t ty = iy + g.ph - ky * g.dh;
      if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.OH) continue;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t tx = ix + g.pw - kx * g.dw;
        if (tx < 0 || tx % g.sw != 0 || tx / g.sw >= g.OW) continue;
        const int64_t r = (c * g.kh + ky) * g.kw + kx;
        acc += dX[r * S + nl * g.L + (ty / g.sh) * g.OW + tx / g.sw];
      }
    }
    dx[((n0 + nl) * g.C + gi * g.Cg + c) * HW + p] = acc;
  }
}

// ---- element-wise steps -----------------------------------------------------------------------
template <typename T>
__global__ void mask_sq_norm_kernel(const T* __restrict__ W, const T* __restrict__ m, int64_t oc,
                                    int64_t Fn, int64_t K, T* __restrict__ D) {
  GRID_STRIDE(i, oc * K) {
    const int64_t j = i / K, r = i - j * K;
    double acc = 0;  // double over the factors, as on the CPU (fmconv.cc, CpuBackend)
    for (int64_t f = 0; f < Fn; ++f) {
      const double w = W[(j * Fn + f) * K + r];
      acc += static_cast<double>(m[f]) * m[f] * (w * w);
    }
    D[i] = static_cast<T>(acc);
  }
}

template <typename T>
__global__ void assemble_out_kernel(const T* __restrict__ Z, const T* __restrict__ Cc,
                                    const T* __restrict__ m, const T* __restrict__ bias,
                                    int64_t oc, int64_t Fn, int64_t nb, int64_t L,
                                    T* __restrict__ y, int64_t n0, int64_t o0, int64_t O) {
  const int64_t S = nb * L;
  GRID_STRIDE(i, oc * S) {
    const int64_t j = i / S, s = i - j * S;
    const int64_t nl = s / L, l = s - nl * L;
    double acc = 0;  // double over the factors, as on the CPU (fmconv.cc, CpuBackend)
    for (int64_t f = 0; f < Fn; ++f) {
      const double z = Z[(j * Fn + f) * S + s];
      acc += static_cast<double>(m[f]) * m[f] * (z * z);
    }
    const double b = bias ? static_cast<double>(bias[j]) : 0.0;
    y[((n0 + nl) * O + o0 + j) * L + l] = static_cast<T>(acc - Cc[i] + b);
  }
}

template <typename T>
__global__ void gather_gy_kernel(const T* __restrict__ gy, int64_t n0, int64_t nb, int64_t o0,
                                 int64_t oc, int64_t O, int64_t L, T* __restrict__ Gy) {
  const int64_t S = nb * L;
  GRID_STRIDE(i, oc * S) {
    const int64_t j = i / S, s = i - j * S;
    const int64_t nl = s / L, l = s - nl * L;
    Gy[i] = gy[((n0 + nl) * O + o0 + j) * L + l];
  }
}

template <typename T>
__global__ void make_p_kernel(T* __restrict__ Z, const T* __restrict__ Gy,
                              const T* __restrict__ m, int64_t oc, int64_t Fn, int64_t S) {
  GRID_STRIDE(i, oc * Fn * S) {
    const int64_t jf = i / S, s = i - jf * S;
    const int64_t j = jf / Fn, f = jf - j * Fn;
    Z[i] *= T(2) * m[f] * m[f] * Gy[j * S + s];
  }
}

template <typename T>
__global__ void dw_correction_kernel(T* __restrict__ dW, const T* __restrict__ W,
                                     const T* __restrict__ E, const T* __restrict__ m,
                                     int64_t oc, int64_t Fn, int64_t K) {
  GRID_STRIDE(i, oc * Fn * K) {
    const int64_t jf = i / K, r = i - jf * K;
    const int64_t j = jf / Fn, f = jf - j * Fn;
    dW[i] -= T(2) * m[f] * m[f] * W[i] * E[j * K + r];
  }
}

template <typename T>
__global__ void dx_correction_kernel(T* __restrict__ dX, const T* __restrict__ Tm,
                                     const T* __restrict__ X, int64_t n, bool legacy) {
  GRID_STRIDE(i, n) { dX[i] -= legacy ? T(2) * Tm[i] : T(2) * Tm[i] * X[i]; }
}

// One block per output channel; a fixed-order tree reduction (deterministic).
template <typename T>
__global__ void bias_grad_kernel(const T* __restrict__ gy, int64_t N, int64_t O, int64_t L,
                                 T* __restrict__ db) {
  __shared__ T part[kThreads];
  const int64_t o = blockIdx.x;
  T acc = T(0);
  for (int64_t i = threadIdx.x; i < N * L; i += kThreads) {
    const int64_t n = i / L, l = i - n * L;
    acc += gy[(n * O + o) * L + l];
  }
  part[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[o] = part[0];
}

int last_error() { return static_cast<int>(cudaGetLastError()); }

}  // namespace

// Runs the statement(s) with T = float or double (variadic: kernel launches contain commas).
#define GM_FM_DISPATCH(elem, ...)                     \
  do {                                                \
    if ((elem) == 4) {                                \
      using T = float;                                \
      __VA_ARGS__;                                    \
    } else if ((elem) == 8) {                         \
      using T = double;                               \
      __VA_ARGS__;                                    \
    }                                                 \
    return static_cast<int>(cudaErrorInvalidValue);   \
  } while (0)

extern "C" int gm_fm_gemm_gpu(int elem, int trans_a, int trans_b, int64_t M, int64_t N,
                              int64_t K, double alpha, const void* A, int64_t lda, const void* B,
                              int64_t ldb, double beta, void* C, int64_t ldc, void* stream) {
  GM_FM_DISPATCH(elem, return gemm<T>(trans_a != 0, trans_b != 0, M, N, K, static_cast<T>(alpha),
                                      static_cast<const T*>(A), lda, static_cast<const T*>(B),
                                      ldb, static_cast<T>(beta), static_cast<T*>(C), ldc,
                                      static_cast<cudaStream_t>(stream)));
}

extern "C" int gm_fm_im2col_gpu(int elem, const gm_fm_geom* g, const void* x, int64_t n0,
                                int64_t nb, int64_t gi, void* X, void* XX, void* stream) {
  const int64_t n = g->K * nb * g->L;
  GM_FM_DISPATCH(elem, {
    im2col_kernel<T><<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        *g, static_cast<const T*>(x), n0, nb, gi, static_cast<T*>(X), static_cast<T*>(XX));
    return last_error();
  });
}

extern "C" int gm_fm_col2im_gpu(int elem, const gm_fm_geom* g, const void* dX, int64_t n0,
                                int64_t nb, int64_t gi, void* dx, void* stream) {
  const int64_t n = nb * g->Cg * g->H * g->W;
  GM_FM_DISPATCH(elem, {
    col2im_kernel<T><<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        *g, static_cast<const T*>(dX), n0, nb, gi, static_cast<T*>(dx));
    return last_error();
  });
}

extern "C" int gm_fm_mask_sq_norm_gpu(int elem, const void* W, const void* m, int64_t oc,
                                      int64_t Fn, int64_t K, void* D, void* stream) {
  GM_FM_DISPATCH(elem, {
    mask_sq_norm_kernel<T><<<blocks_for(oc * K), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(W), static_cast<const T*>(m), oc, Fn, K, static_cast<T*>(D));
    return last_error();
  });
}

extern "C" int gm_fm_assemble_out_gpu(int elem, const void* Z, const void* Cc, const void* m,
                                      const void* bias, int64_t oc, int64_t Fn, int64_t nb,
                                      int64_t L, void* y, int64_t n0, int64_t o0, int64_t O,
                                      void* stream) {
  GM_FM_DISPATCH(elem, {
    assemble_out_kernel<T><<<blocks_for(oc * nb * L), kThreads, 0,
                             static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(Z), static_cast<const T*>(Cc), static_cast<const T*>(m),
        static_cast<const T*>(bias), oc, Fn, nb, L, static_cast<T*>(y), n0, o0, O);
    return last_error();
  });
}

extern "C" int gm_fm_gather_gy_gpu(int elem, const void* gy, int64_t n0, int64_t nb, int64_t o0,
                                   int64_t oc, int64_t O, int64_t L, void* Gy, void* stream) {
  GM_FM_DISPATCH(elem, {
    gather_gy_kernel<T><<<blocks_for(oc * nb * L), kThreads, 0,
                          static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(gy), n0, nb, o0, oc, O, L, static_cast<T*>(Gy));
    return last_error();
  });
}

extern "C" int gm_fm_make_p_gpu(int elem, void* Z, const void* Gy, const void* m, int64_t oc,
                                int64_t Fn, int64_t S, void* stream) {
  GM_FM_DISPATCH(elem, {
    make_p_kernel<T><<<blocks_for(oc * Fn * S), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<T*>(Z), static_cast<const T*>(Gy), static_cast<const T*>(m), oc, Fn, S);
    return last_error();
  });
}

extern "C" int gm_fm_dw_correction_gpu(int elem, void* dW, const void* W, const void* E,
                                       const void* m, int64_t oc, int64_t Fn, int64_t K,
                                       void* stream) {
  GM_FM_DISPATCH(elem, {
    dw_correction_kernel<T><<<blocks_for(oc * Fn * K), kThreads, 0,
                              static_cast<cudaStream_t>(stream)>>>(
        static_cast<T*>(dW), static_cast<const T*>(W), static_cast<const T*>(E),
        static_cast<const T*>(m), oc, Fn, K);
    return last_error();
  });
}

extern "C" int gm_fm_dx_correction_gpu(int elem, void* dX, const void* Tm, const void* X,
                                       int64_t n, int legacy, void* stream) {
  GM_FM_DISPATCH(elem, {
    dx_correction_kernel<T><<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<T*>(dX), static_cast<const T*>(Tm), static_cast<const T*>(X), n,
        legacy != 0);
    return last_error();
  });
}

extern "C" int gm_fm_bias_grad_gpu(int elem, const void* gy, int64_t N, int64_t O, int64_t L,
                                   void* db, void* stream) {
  if (O <= 0) return 0;
  if (O > 0x7fffffffLL) return static_cast<int>(cudaErrorInvalidValue);
  GM_FM_DISPATCH(elem, {
    bias_grad_kernel<T><<<static_cast<unsigned>(O), kThreads, 0,
                          static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(gy), N, O,
                                                                L, static_cast<T*>(db));
    return last_error();
  });
}

extern "C" int gm_fm_zero_gpu(void* p, int64_t bytes, void* stream) {
  if (bytes <= 0) return 0;
  return static_cast<int>(
      cudaMemsetAsync(p, 0, static_cast<size_t>(bytes), static_cast<cudaStream_t>(stream)));
}
