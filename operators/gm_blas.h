// The BLAS of the CPU operators, chosen when setup.py builds the library:
//
//   GM_BLAS_SCIPY_OPENBLAS  OpenBLAS from the scipy-openblas32 wheel (the build numpy and scipy
//                           ship; LP64, pthreads, DYNAMIC_ARCH with AVX-512 kernels), linked by
//                           path with an rpath. Its symbols carry the prefix scipy_, so they
//                           cannot bind to the unprefixed OpenBLAS copies in the process (mxnet's
//                           libopenblas.so.0, opencv's), nor to numpy's *64_ ILP64 build. scipy's
//                           own copy (scipy.libs) uses the same prefix, but Python loads it
//                           privately (RTLD_LOCAL), so the library's calls bind to the copy it
//                           names (checked with LD_DEBUG=bindings, scipy imported first).
//   otherwise               the OpenBLAS 0.3.13 of the mxnet wheel (libopenblas.so.0, already
//                           loaded by libmxnet; spec/platform.md section 5), the fallback.
//
// Threads: the operators run every GEMM through gm::gemm, which cuts it into one independent
// GEMM per OpenMP thread (along the longer of M and N) and runs each with a single BLAS
// thread. The thread count is what MXNet gives an operator on its engine thread
// (omp_get_max_threads(): OMP_NUM_THREADS if set, else half the cores), as for MXNet's own
// operators, and all CPU work of an operator runs on the one OpenMP pool (libgomp) that MXNet
// uses too: no second pool of BLAS threads spins on the same cores between calls.
// gm::blas_init() (called once from initialize()) sets the scipy-openblas thread count to 1;
// mxnet's OpenBLAS is an OpenMP build and runs single-threaded inside a parallel region anyway,
// so its setting (which MXNet's own dot relies on) is left alone.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

#ifdef GM_BLAS_SCIPY_OPENBLAS
#include <cblas.h>  // scipy_openblas32/include: declares the scipy_-prefixed functions
#else
extern "C" {
// RowMajor=101, NoTrans=111, Trans=112 (spec/platform.md section 5)
void cblas_sgemm(int order, int trans_a, int trans_b, int M, int N, int K, float alpha,
                 const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc);
void cblas_dgemm(int order, int trans_a, int trans_b, int M, int N, int K, double alpha,
                 const double* A, int lda, const double* B, int ldb, double beta, double* C,
                 int ldc);
char* openblas_get_config(void);
char* openblas_get_corename(void);
int openblas_get_num_threads(void);
}
#endif

namespace gm {

#ifdef GM_BLAS_SCIPY_OPENBLAS
inline CBLAS_TRANSPOSE blas_trans(bool t) { return t ? CblasTrans : CblasNoTrans; }
inline void blas_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, float beta, float* C, int ldc) {
  scipy_cblas_sgemm(CblasRowMajor, blas_trans(ta), blas_trans(tb), M, N, K, alpha, A, lda, B, ldb,
                    beta, C, ldc);
}
inline void blas_gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A,
                      int lda, const double* B, int ldb, double beta, double* C, int ldc) {
  scipy_cblas_dgemm(CblasRowMajor, blas_trans(ta), blas_trans(tb), M, N, K, alpha, A, lda, B, ldb,
                    beta, C, ldc);
}
// Upper triangle (diagonal included) of C = alpha op(A) op(B) (n x n; beta = 0): OpenBLAS's
// GEMMT, about half the work of the full product.
inline void blas_gemmt_upper(bool ta, bool tb, int n, int k, float alpha, const float* A,
                             int lda, const float* B, int ldb, float* C, int ldc) {
  scipy_cblas_sgemmt(CblasRowMajor, CblasUpper, blas_trans(ta), blas_trans(tb), n, k, alpha, A,
                     lda, B, ldb, 0.0f, C, ldc);
}
inline void blas_gemmt_upper(bool ta, bool tb, int n, int k, double alpha, const double* A,
                             int lda, const double* B, int ldb, double* C, int ldc) {
  scipy_cblas_dgemmt(CblasRowMajor, CblasUpper, blas_trans(ta), blas_trans(tb), n, k, alpha, A,
                     lda, B, ldb, 0.0, C, ldc);
}
constexpr bool kHaveGemmt = true;
inline void blas_init() { scipy_openblas_set_num_threads(1); }
inline const char* blas_config() { return scipy_openblas_get_config(); }
inline const char* blas_corename() { return scipy_openblas_get_corename(); }
inline int blas_threads() { return scipy_openblas_get_num_threads(); }
#else
inline void blas_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(101, ta ? 112 : 111, tb ? 112 : 111, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline void blas_gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A,
                      int lda, const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(101, ta ? 112 : 111, tb ? 112 : 111, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
// mxnet's OpenBLAS 0.3.13 has no CBLAS GEMMT: gemm_sym computes the full product there.
template <typename T>
inline void blas_gemmt_upper(bool, bool, int, int, T, const T*, int, const T*, int, T*, int) {}
constexpr bool kHaveGemmt = false;
inline void blas_init() {}
inline const char* blas_config() { return openblas_get_config(); }
inline const char* blas_corename() { return openblas_get_corename(); }
inline int blas_threads() { return openblas_get_num_threads(); }
#endif

// Below this many multiply-adds a GEMM is not worth a parallel region.
constexpr int64_t kParallelGemmMacs = int64_t(1) << 21;
// Parts start at multiples of this many rows or columns (64 bytes of float in a row of C).
constexpr int64_t kGemmPartAlign = 16;

// C = alpha op(A) op(B) + beta C, row-major, op(A) M x K, op(B) K x N (dimensions and leading
// dimensions must fit the int of the CBLAS interface). Split into up to omp_get_max_threads()
// parts along the longer of M and N (the operand that every part packs, op(B) resp. op(A), is
// then the smaller one); each part is one single-threaded BLAS call over the whole K.
template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    // An empty sum: C = beta C. CBLAS rejects lda/ldb < 1 (a zero-channel input makes K and
    // the leading dimensions 0) and would print an error instead of computing this.
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  const bool split_n = N >= M;
  const int64_t len = split_n ? N : M;
  int64_t parts = omp_in_parallel() ? 1 : omp_get_max_threads();
  parts = std::min(parts, len / kGemmPartAlign);
  if (parts <= 1 || M * N * K < kParallelGemmMacs) {
    blas_gemm(ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
    return;
  }
  const int64_t units = (len + kGemmPartAlign - 1) / kGemmPartAlign;
#pragma omp parallel for num_threads(static_cast<int>(parts)) schedule(static)
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t b = std::min(len, units * p / parts * kGemmPartAlign);
    const int64_t e = std::min(len, units * (p + 1) / parts * kGemmPartAlign);
    if (e <= b) continue;
    if (split_n) {  // columns [b, e) of op(B) and C
      const T* Bp = tb ? B + b * ldb : B + b;
      blas_gemm(ta, tb, static_cast<int>(M), static_cast<int>(e - b), static_cast<int>(K), alpha,
                A, static_cast<int>(lda), Bp, static_cast<int>(ldb), beta, C + b,
                static_cast<int>(ldc));
    } else {  // rows [b, e) of op(A) and C
      const T* Ap = ta ? A + b : A + b * lda;
      blas_gemm(ta, tb, static_cast<int>(e - b), static_cast<int>(N), static_cast<int>(K), alpha,
                Ap, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C + b * ldc,
                static_cast<int>(ldc));
    }
  }
}

// C = alpha op(A) op(B), n x n, for products known to be symmetric (e.g. Y Q with Q = P Y and
// Y, P symmetric; or two commuting symmetric matrices, where the product is symmetric in exact
// arithmetic): the upper triangle by GEMMT, mirrored into the lower one, so C is exactly
// symmetric. Inside a parallel region (one image per thread) that is one single-threaded call;
// outside it, or without GEMMT, the full product through gemm (split across the threads),
// mirrored too, so both paths give an exactly symmetric C.
template <typename T>
void gemm_sym(bool ta, bool tb, int64_t n, int64_t k, T alpha, const T* A, int64_t lda,
              const T* B, int64_t ldb, T* C, int64_t ldc) {
  if (n == 0) return;
  const bool one_call = kHaveGemmt && k > 0 && (omp_in_parallel() || omp_get_max_threads() == 1);
  if (one_call) {
    blas_gemmt_upper(ta, tb, static_cast<int>(n), static_cast<int>(k), alpha, A,
                     static_cast<int>(lda), B, static_cast<int>(ldb), C, static_cast<int>(ldc));
  } else {
    gemm(ta, tb, n, n, k, alpha, A, lda, B, ldb, T(0), C, ldc);
  }
  for (int64_t i = 1; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) C[i * ldc + j] = C[j * ldc + i];
}

}  // namespace gm
