// ISqrtCov: iSQRT-COV global covariance pooling in one operator (Li, Xie, Wang, Gao, "Towards
// Faster Training of Global Covariance Pooling Networks by Iterative Matrix Square Root
// Normalization", CVPR 2018; the authors' MPNCOV layer, https://github.com/jiangtaoxie/fast-MPN-COV).
//
//   ISqrtCov(data, index, iter_num=5, sqrt=True, vectorize=True, eps=0)   (vectorize=False: no index)
//
// Per image, with X the (C, M = H*W) feature matrix and X_c = X minus its row means:
//   S = X_c X_c^T / M                           covariance (biased, no M x M centring matrix)
//   t = max(tr S + eps, 1e-30), A = S / t       pre-normalisation (fast MPN-COV: eps = 0, the clamp
//                                               only keeps a zero map finite; GM-SOP: eps = 1e-8)
//   N = iter_num coupled Newton-Schulz steps:   Y_1 = 1.5 A - 0.5 A^2, Z_1 = 1.5 I - 0.5 A,
//     W_k = Z_{k-1} Y_{k-1},  Y_k = 1.5 Y_{k-1} - 0.5 Y_{k-1} W_k,  Z_k = 1.5 Z_{k-1} - 0.5 W_k Z_{k-1}
//     (k = 2 .. N-1), and Y_N = 1.5 Y_{N-1} - 0.5 Y_{N-1} W_N with no Z_N; N < 2: Y_N = Y_1.
//   out = sqrt(t) Y_N                           post-compensation
//   vectorize: out[b, k] = (C x C result of image b, flattened row-major)[index[k]], with `index`
//   an int32 vector (K,) of positions in [0, C*C): the fast MPN-COV networks pass the row-major
//   upper triangle i*C + j, i <= j (K = C(C+1)/2), GM-SOP the column-major one; it is the same
//   constant the stock twin's `take` reads, so both twins have the same parameters. The
//   backward scatter-adds into those positions. vectorize=False: the C x C matrix.
//   sqrt=False: the result is S (no normalisation).
// Output (B, K) or (B, C, C); float32 or float64 (the Gluon block runs float16 in float32).
//
// Every iterate is a polynomial in A: symmetric, and all commute. The operator uses that twice:
// - products whose result is symmetric (Y W = Y Z Y, W Z = Z Y Z, Z Y, A A, X_c X_c^T, Y P Y)
//   compute the upper triangle only (GEMMT) and mirror it: the forward costs half of its 3N-3
//   C x C products;
// - the layer's data gradient only depends on the symmetric part of the gradient w.r.t. S
//   (dX = (G_S + G_S^T) X_c / M), and for a symmetric argument the adjoint of the matrix
//   function commutes with transposition, so the backward starts from G_s = (G + G^T) / 2, all of
//   its matrices are symmetric, and the spec's two-sided terms (Ybar W + W Ybar etc.) are one
//   product plus its transpose. Per step k = N-1 .. 2 (Ybar, Zbar the gradients w.r.t. Y_k, Z_k):
//     Ybar' = 1.5 Ybar - 0.5 (Ybar W_k + (Ybar W_k)^T) - 0.5 Z Zbar Z
//     Zbar' = 1.5 Zbar - 0.5 (Zbar W_k + (Zbar W_k)^T) - 0.5 Y Ybar Y       (Y, Z = Y_{k-1}, Z_{k-1})
//   started by Ybar = 1.5 P - 0.5 (P W_N + (P W_N)^T), Zbar = -0.5 Y_{N-1} P Y_{N-1},
//   P = sqrt(t) G_s, and closed by Abar = 1.5 Ybar - 0.5 (Ybar A + (Ybar A)^T) - 0.5 Zbar;
//   then Sbar = Abar / t + (<G_s, Y_N> / (2 sqrt t) - <Abar, S> / t^2) I (no trace term when the
//   clamp is active, as the clamp's derivative is 0) and dX = 2 Sbar X_c / M.
//   That is the paper's analytic backward (exact, never the transposed standalone gradient) in
//   4 full + 2 half products per step instead of 10 full ones.
// Extension operators have no hidden outputs, so the backward recomputes the forward's iterates
// (half-cost products) instead of keeping them alive between the passes: the memory held per
// image in flight is 3(N-1)+12 C x C matrices plus X_c, and at most one image per thread is in
// flight (images run in parallel, each on one thread with single-threaded BLAS).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <utility>

#include "gm_blas.h"
#include "gm_common.h"
#include "gm_cuda.h"

using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;

namespace {

const char* kOp = "ISqrtCov";
constexpr double kMinTrace = 1e-30;  // same clamp as the stock twin (nn/representation.py)
constexpr int64_t kMaxIter = 100;
constexpr int64_t kAlign = 64;
constexpr int64_t kMaxPool = INT_MAX - 64 * kAlign;  // alloc_cpu/alloc_gpu take an int

struct ISqrtCovParam {
  int64_t iter_num;
  bool sqrt, vectorize;
  double eps;

  bool parse(const gm::Attrs& attrs) {
    gm::AttrReader r(attrs, kOp);
    return r.get_int("iter_num", &iter_num, false, 5, 0, kMaxIter) &&
           r.get_bool("sqrt", &sqrt, true) && r.get_bool("vectorize", &vectorize, true) &&
           r.get_float("eps", &eps, false, 0.0, 0.0, 1.0) && r.finish();
  }
  size_t num_inputs() const { return vectorize ? 2 : 1; }
  // Newton-Schulz iterates kept per image: Y_1..Y_{N-1}, Z_1..Z_{N-1}, W_2..W_N.
  int64_t stored() const { return sqrt && iter_num >= 2 ? 3 * (iter_num - 1) : 0; }
};

struct Dims {
  int64_t B, C, M, K;  // K: output values per image
  const int32_t* index;  // the K gather positions (vectorize), on the tensors' device
};

std::vector<int64_t> out_shape(const ISqrtCovParam& p, int64_t B, int64_t C, int64_t K) {
  if (p.vectorize) return {B, K};
  return {B, C, C};
}

// ---- per-image buffers ------------------------------------------------------------------------
constexpr int kTemps = 12;  // S, A, Yn, Q, Q2, R, G, P, Yb, Zb, Yb2, Zb2

int64_t rounded(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

int64_t worker_bytes(const ISqrtCovParam& p, const Dims& d, int64_t elem) {
  return rounded(d.C * d.M * elem) + (kTemps + p.stored()) * rounded(d.C * d.C * elem);
}

template <typename T>
struct Work {
  T *Xc, *S, *A, *Yn, *Q, *Q2, *R, *G, *P, *Yb, *Zb, *Yb2, *Zb2;
  std::vector<T*> Ys, Zs, Ws;

  Work(char* pool, const ISqrtCovParam& p, const Dims& d) {
    const int64_t mat = rounded(d.C * d.C * static_cast<int64_t>(sizeof(T)));
    Xc = reinterpret_cast<T*>(pool);
    pool += rounded(d.C * d.M * static_cast<int64_t>(sizeof(T)));
    T** temps[kTemps] = {&S, &A, &Yn, &Q, &Q2, &R, &G, &P, &Yb, &Zb, &Yb2, &Zb2};
    for (T** t : temps) {
      *t = reinterpret_cast<T*>(pool);
      pool += mat;
    }
    const int64_t n = p.stored() / 3;
    for (auto* v : {&Ys, &Zs, &Ws}) {
      for (int64_t i = 0; i < n; ++i) {
        v->push_back(reinterpret_cast<T*>(pool));
        pool += mat;
      }
    }
  }
};

// ---- CPU backend ------------------------------------------------------------------------------
// Each method works on one image's C x C (or C x M) matrices; scalars come back to the caller.
template <typename T>
struct CpuBackend {
  bool ok() const { return true; }
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
            const T* B, int64_t ldb, T* C, int64_t ldc) {
    gm::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, T(0), C, ldc);
  }
  void gemm_sym(bool ta, bool tb, int64_t n, int64_t k, T alpha, const T* A, int64_t lda,
                const T* B, int64_t ldb, T* C) {
    gm::gemm_sym(ta, tb, n, k, alpha, A, lda, B, ldb, C, n);
  }
  // Xc = x minus the mean of each of its C rows of length M.
  void center(const T* x, int64_t C, int64_t M, T* Xc) {
    for (int64_t c = 0; c < C; ++c) {
      const T* row = x + c * M;
      double s = 0;
      for (int64_t m = 0; m < M; ++m) s += row[m];
      const T mean = static_cast<T>(s / static_cast<double>(M));
      T* dst = Xc + c * M;
      for (int64_t m = 0; m < M; ++m) dst[m] = row[m] - mean;
    }
  }
  // out = a X + b (Q + Q^T) + c R + diag I (n x n; a null X/Q/R counts as 0). out may be X or
  // R (read at the same index first), never Q.
  void combo(int64_t n, T* out, T a, const T* X, T b, const T* Q, T c, const T* R, T diag) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        const int64_t ij = i * n + j;
        T v = i == j ? diag : T(0);
        if (X) v += a * X[ij];
        if (Q) v += b * (Q[ij] + Q[j * n + i]);
        if (R) v += c * R[ij];
        out[ij] = v;
      }
    }
  }
  double trace(const T* S, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += S[i * n + i];
    return s;
  }
  double dot(const T* a, const T* b, int64_t count) {
    double s = 0;
    for (int64_t i = 0; i < count; ++i) s += static_cast<double>(a[i]) * b[i];
    return s;
  }
  void gather(const T* S, const int32_t* index, int64_t K, T* out) {
    for (int64_t k = 0; k < K; ++k) out[k] = S[index[k]];
  }
  // G (n x n) = 0, then G[index[k]] += g[k].
  void scatter(const T* g, const int32_t* index, int64_t K, int64_t n, T* G) {
    std::fill(G, G + n * n, T(0));
    for (int64_t k = 0; k < K; ++k) G[index[k]] += g[k];
  }
  void copy(const T* src, T* dst, int64_t count) { std::memcpy(dst, src, count * sizeof(T)); }
};

#ifdef GM_WITH_CUDA
// Same interface on the GPU: the kernels of isqrtcov_kernels.cu and the tiled GEMM of
// fmconv_kernels.cu on MXNet's stream; scalars are copied back (a synchronisation per scalar).
template <typename T>
struct GpuBackend {
  void* stream;
  int err = 0;
  static constexpr int kElem = sizeof(T);
  bool ok() const { return err == 0; }
  void keep(int e) {
    if (err == 0) err = e;
  }
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
            const T* B, int64_t ldb, T* C, int64_t ldc) {
    if (ok()) keep(gm_fm_gemm_gpu(kElem, ta, tb, M, N, K, alpha, A, lda, B, ldb, 0.0, C, ldc,
                                  stream));
  }
  void gemm_sym(bool ta, bool tb, int64_t n, int64_t k, T alpha, const T* A, int64_t lda,
                const T* B, int64_t ldb, T* C) {
    gemm(ta, tb, n, n, k, alpha, A, lda, B, ldb, C, n);
    if (ok()) keep(gm_isc_mirror_gpu(kElem, C, n, stream));
  }
  void center(const T* x, int64_t C, int64_t M, T* Xc) {
    if (ok()) keep(gm_isc_center_gpu(kElem, x, C, M, Xc, stream));
  }
  void combo(int64_t n, T* out, T a, const T* X, T b, const T* Q, T c, const T* R, T diag) {
    if (ok()) keep(gm_isc_combo_gpu(kElem, n, out, a, X, b, Q, c, R, diag, stream));
  }
  double trace(const T* S, int64_t n) {
    double v = 0;
    if (ok()) keep(gm_isc_sum_gpu(kElem, S, nullptr, n, n + 1, &v, stream));
    return v;
  }
  double dot(const T* a, const T* b, int64_t count) {
    double v = 0;
    if (ok()) keep(gm_isc_sum_gpu(kElem, a, b, count, 1, &v, stream));
    return v;
  }
  void gather(const T* S, const int32_t* index, int64_t K, T* out) {
    if (ok()) keep(gm_isc_gather_gpu(kElem, S, index, K, out, stream));
  }
  void scatter(const T* g, const int32_t* index, int64_t K, int64_t n, T* G) {
    if (ok()) keep(gm_isc_scatter_gpu(kElem, g, index, K, n, G, stream));
  }
  void copy(const T* src, T* dst, int64_t count) {
    if (ok()) keep(gm_isc_copy_gpu(dst, src, count * kElem, stream));
  }
};
#endif

// ---- the algorithm (one image) -------------------------------------------------------------------
// Covariance and iterates of one image into w; returns the clamped trace t (1 without sqrt).
template <typename T, typename Be>
double iterate(Be& be, const ISqrtCovParam& p, const Dims& d, const T* x, Work<T>& w,
               bool* clamped) {
  const int64_t C = d.C, N = p.iter_num;
  be.center(x, C, d.M, w.Xc);
  be.gemm_sym(false, true, C, d.M, T(1.0 / static_cast<double>(d.M)), w.Xc, d.M, w.Xc, d.M, w.S);
  if (!p.sqrt) return 1.0;
  const double tr = be.trace(w.S, C) + p.eps;
  *clamped = !(tr >= kMinTrace);
  const double t = *clamped ? kMinTrace : tr;
  be.combo(C, w.A, T(1.0 / t), w.S, T(0), nullptr, T(0), nullptr, T(0));
  be.gemm_sym(false, false, C, C, T(1), w.A, C, w.A, C, w.Q);                // A^2
  T* Y1 = N >= 2 ? w.Ys[0] : w.Yn;
  be.combo(C, Y1, T(1.5), w.A, T(0), nullptr, T(-0.5), w.Q, T(0));          // Y_1
  if (N < 2) return t;
  be.combo(C, w.Zs[0], T(-0.5), w.A, T(0), nullptr, T(0), nullptr, T(1.5));  // Z_1
  for (int64_t k = 2; k <= N; ++k) {
    const int64_t i = k - 2;  // Ys[i] = Y_{k-1}, Zs[i] = Z_{k-1}, Ws[i] = W_k
    T* Y = w.Ys[i];
    T* Z = w.Zs[i];
    be.gemm_sym(false, false, C, C, T(1), Z, C, Y, C, w.Ws[i]);
    be.gemm_sym(false, false, C, C, T(1), Y, C, w.Ws[i], C, w.Q);             // Y Z Y
    be.combo(C, k < N ? w.Ys[i + 1] : w.Yn, T(1.5), Y, T(0), nullptr, T(-0.5), w.Q, T(0));
    if (k == N) break;
    be.gemm_sym(false, false, C, C, T(1), w.Ws[i], C, Z, C, w.Q);             // Z Y Z
    be.combo(C, w.Zs[i + 1], T(1.5), Z, T(0), nullptr, T(-0.5), w.Q, T(0));
  }
  return t;
}

template <typename T, typename Be>
void forward_image(Be& be, const ISqrtCovParam& p, const Dims& d, const T* x, T* out,
                   Work<T>& w) {
  const int64_t C = d.C;
  bool clamped = false;
  const double t = iterate(be, p, d, x, w, &clamped);
  const T* result = w.S;
  if (p.sqrt) {
    be.combo(C, w.R, T(std::sqrt(t)), w.Yn, T(0), nullptr, T(0), nullptr, T(0));
    result = w.R;
  }
  if (p.vectorize) {
    be.gather(result, d.index, d.K, out);
  } else {
    be.copy(result, out, C * C);
  }
}

template <typename T, typename Be>
void backward_image(Be& be, const ISqrtCovParam& p, const Dims& d, const T* gout, const T* x,
                    T* dx, Work<T>& w) {
  const int64_t C = d.C, N = p.iter_num;
  bool clamped = false;
  const double t = iterate(be, p, d, x, w, &clamped);
  if (p.vectorize) {
    be.scatter(gout, d.index, d.K, C, w.G);
  } else {
    be.copy(gout, w.G, C * C);
  }
  T* Sbar = w.R;
  be.combo(C, Sbar, T(0), nullptr, T(0.5), w.G, T(0), nullptr, T(0));  // G_s
  if (p.sqrt) {
    const double st = std::sqrt(t);
    const double g_post = be.dot(Sbar, w.Yn, C * C) / (2 * st);
    be.combo(C, w.P, T(st), Sbar, T(0), nullptr, T(0), nullptr, T(0));  // P
    T *Yb = w.Yb, *Zb = w.Zb, *Yb2 = w.Yb2, *Zb2 = w.Zb2;
    if (N < 2) {
      be.gemm(false, false, C, C, C, T(1), w.P, C, w.A, C, w.Q, C);
      be.combo(C, Sbar, T(1.5), w.P, T(-0.5), w.Q, T(0), nullptr, T(0));  // Abar
    } else {
      const int64_t last = N - 2;
      be.gemm(false, false, C, C, C, T(1), w.P, C, w.Ws[last], C, w.Q, C);
      be.combo(C, Yb, T(1.5), w.P, T(-0.5), w.Q, T(0), nullptr, T(0));
      be.gemm(false, false, C, C, C, T(1), w.P, C, w.Ys[last], C, w.Q, C);
      be.gemm_sym(false, false, C, C, T(-0.5), w.Ys[last], C, w.Q, C, Zb);
      for (int64_t k = N - 1; k >= 2; --k) {
        const int64_t i = k - 2;  // Y_{k-1}, Z_{k-1}, W_k
        const T* Y = w.Ys[i];
        const T* Z = w.Zs[i];
        const T* W = w.Ws[i];
        be.gemm(false, false, C, C, C, T(1), Yb, C, W, C, w.Q, C);
        be.gemm(false, false, C, C, C, T(1), Zb, C, Z, C, w.Q2, C);
        be.gemm_sym(false, false, C, C, T(1), Z, C, w.Q2, C, Yb2);
        be.combo(C, Yb2, T(-0.5), Yb2, T(-0.5), w.Q, T(1.5), Yb, T(0));
        be.gemm(false, false, C, C, C, T(1), Zb, C, W, C, w.Q, C);
        be.gemm(false, false, C, C, C, T(1), Yb, C, Y, C, w.Q2, C);
        be.gemm_sym(false, false, C, C, T(1), Y, C, w.Q2, C, Zb2);
        be.combo(C, Zb2, T(-0.5), Zb2, T(-0.5), w.Q, T(1.5), Zb, T(0));
        std::swap(Yb, Yb2);
        std::swap(Zb, Zb2);
      }
      be.gemm(false, false, C, C, C, T(1), Yb, C, w.A, C, w.Q, C);
      be.combo(C, Sbar, T(1.5), Yb, T(-0.5), w.Q, T(-0.5), Zb, T(0));  // Abar
    }
    const double coef = clamped ? 0.0 : g_post - be.dot(Sbar, w.S, C * C) / (t * t);
    be.combo(C, Sbar, T(1.0 / t), Sbar, T(0), nullptr, T(0), nullptr, T(coef));
  }
  be.gemm(false, false, C, d.M, C, T(2.0 / static_cast<double>(d.M)), Sbar, C, w.Xc, d.M, dx,
          d.M);
}

// ---- checks and dispatch ------------------------------------------------------------------------
bool supported_dtype(int t) { return t == mxnet::ext::kFloat32 || t == mxnet::ext::kFloat64; }

bool check_data(const MXTensor& t, Dims* d) {
  if (t.shape.size() != 4) {
    MX_ERROR_MSG << kOp << ": input 'data' must be 4-D (B, C, H, W), got shape "
                 << gm::shape_str(t.shape);
    return false;
  }
  if (!supported_dtype(t.dtype)) {
    MX_ERROR_MSG << kOp << ": input 'data' has unsupported dtype " << gm::dtype_name(t.dtype)
                 << " (supported: float32, float64)";
    return false;
  }
  d->B = t.shape[0];
  d->C = t.shape[1];
  d->M = t.shape[2] * t.shape[3];
  if (d->C < 1 || d->M < 1) {
    MX_ERROR_MSG << kOp << ": input 'data' needs at least one channel and one position, got "
                 << "shape " << gm::shape_str(t.shape);
    return false;
  }
  return true;
}

// The gather positions: int32 (K,), every value in [0, C*C) (read on the host; a GPU index is
// copied back first).
bool check_index(MXTensor& t, const Dims& d, int64_t* K) {
  if (t.shape.size() != 1) {
    MX_ERROR_MSG << kOp << ": input 'index' must be 1-D (K,), got shape " << gm::shape_str(t.shape);
    return false;
  }
  if (t.dtype != mxnet::ext::kInt32) {
    MX_ERROR_MSG << kOp << ": input 'index' must be int32, got " << gm::dtype_name(t.dtype);
    return false;
  }
  *K = t.shape[0];
  std::vector<int32_t> host(static_cast<size_t>(*K));
  if (*K == 0) return true;
  if (t.ctx.dev_type == "gpu") {
#ifdef GM_WITH_CUDA
    const int err = gm_isc_to_host(host.data(), t.data_ptr, *K * 4);
    if (err != 0) {
      MX_ERROR_MSG << kOp << ": CUDA error " << gm_cuda_error_string(err);
      return false;
    }
#endif
  } else {
    std::memcpy(host.data(), t.data_ptr, static_cast<size_t>(*K) * 4);
  }
  const int64_t size = d.C * d.C;
  for (int64_t k = 0; k < *K; ++k) {
    if (host[k] < 0 || host[k] >= size) {
      MX_ERROR_MSG << kOp << ": input 'index' holds " << host[k] << " at position " << k
                   << ", outside [0, C*C) = [0, " << size << ")";
      return false;
    }
  }
  return true;
}

// Reads data (and index, when vectorize) of a pass into d.
bool check_inputs(const ISqrtCovParam& p, std::vector<MXTensor>& in, size_t first, Dims* d) {
  if (!check_data(in[first], d)) return false;
  d->K = d->C * d->C;
  d->index = nullptr;
  if (!p.vectorize) return true;
  if (!check_index(in[first + 1], *d, &d->K)) return false;
  d->index = in[first + 1].data<int32_t>();
  return true;
}

// Runs body(backend, worker buffers of image b, b) over the batch: on the CPU images in
// parallel, one per thread (single-threaded BLAS), or one after the other with the GEMMs split
// across the threads when there are fewer images than threads.
template <typename T, typename Body>
gm::MXReturnValue over_images(const ISqrtCovParam& p, const Dims& d, bool gpu,
                              const OpResource& res, Body body) {
  const int64_t per = worker_bytes(p, d, sizeof(T));
  if (per > kMaxPool) {
    MX_ERROR_MSG << kOp << ": one image needs " << (per >> 20) << " MB of temporary memory "
                 << "(C = " << d.C << ", H*W = " << d.M << ", iter_num = " << p.iter_num
                 << "), more than the 2 GiB a single request can hold";
    return gm::MX_FAIL;
  }
  if (gpu) {
#ifdef GM_WITH_CUDA
    char* pool = static_cast<char*>(res.alloc_gpu(static_cast<int>(per)));
    if (!pool) {
      MX_ERROR_MSG << kOp << ": cannot allocate " << (per >> 20) << " MB of GPU workspace";
      return gm::MX_FAIL;
    }
    GpuBackend<T> be{res.get_cuda_stream()};
    Work<T> w(pool, p, d);
    for (int64_t b = 0; b < d.B && be.ok(); ++b) body(be, w, b);
    return gm::gpu_status(kOp, be.err);
#else
    return gm::gpu_status(kOp, -1);
#endif
  }
  int64_t workers = std::min<int64_t>(d.B, omp_get_max_threads());
  workers = std::max<int64_t>(1, std::min(workers, kMaxPool / per));
  char* pool = static_cast<char*>(res.alloc_cpu(static_cast<int>(per * workers)));
  if (!pool) {
    MX_ERROR_MSG << kOp << ": cannot allocate " << ((per * workers) >> 20)
                 << " MB of workspace";
    return gm::MX_FAIL;
  }
  if (workers == 1) {
    CpuBackend<T> be;
    Work<T> w(pool, p, d);
    for (int64_t b = 0; b < d.B; ++b) body(be, w, b);
    return gm::MX_SUCCESS;
  }
#pragma omp parallel num_threads(static_cast<int>(workers))
  {
    CpuBackend<T> be;
    Work<T> w(pool + per * omp_get_thread_num(), p, d);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < d.B; ++b) body(be, w, b);
  }
  return gm::MX_SUCCESS;
}

template <typename T>
gm::MXReturnValue run_forward(const ISqrtCovParam& p, const Dims& d, MXTensor& x,
                              MXTensor& out, const OpResource& res) {
  const T* xp = x.data<T>();
  T* op = out.data<T>();
  return over_images<T>(p, d, x.ctx.dev_type == "gpu", res, [&](auto& be, Work<T>& w, int64_t b) {
    forward_image<T>(be, p, d, xp + b * d.C * d.M, op + b * d.K, w);
  });
}

template <typename T>
gm::MXReturnValue run_backward(const ISqrtCovParam& p, const Dims& d, MXTensor& gout,
                               MXTensor& x, MXTensor& dx, const OpResource& res) {
  const T* gp = gout.data<T>();
  const T* xp = x.data<T>();
  T* dp = dx.data<T>();
  return over_images<T>(p, d, x.ctx.dev_type == "gpu", res, [&](auto& be, Work<T>& w, int64_t b) {
    backward_image<T>(be, p, d, gp + b * d.K, xp + b * d.C * d.M, dp + b * d.C * d.M, w);
  });
}

// ---- lib_api hooks ---------------------------------------------------------------------------------
gm::MXReturnValue parseAttrs(const gm::Attrs& attrs, int* num_in, int* num_out) {
  ISqrtCovParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  *num_in = p.num_inputs();
  *num_out = 1;
  return gm::MX_SUCCESS;
}

gm::MXReturnValue inferType(const gm::Attrs& attrs, std::vector<int>* in,
                            std::vector<int>* out) {
  ISqrtCovParam p;
  if (!p.parse(attrs) ||
      !gm::check_counts(kOp, "type inference", in->size(), p.num_inputs(), out->size(), 1))
    return gm::MX_FAIL;
  const int t = (*in)[0];
  if (t >= 0 && !supported_dtype(t)) {
    MX_ERROR_MSG << kOp << ": input 'data' has unsupported dtype " << gm::dtype_name(t)
                 << " (supported: float32, float64)";
    return gm::MX_FAIL;
  }
  if (p.vectorize) {
    const int ti = (*in)[1];
    if (ti >= 0 && ti != mxnet::ext::kInt32) {
      MX_ERROR_MSG << kOp << ": input 'index' must be int32, got " << gm::dtype_name(ti);
      return gm::MX_FAIL;
    }
    (*in)[1] = mxnet::ext::kInt32;
  }
  (*out)[0] = t;
  return gm::MX_SUCCESS;
}

gm::MXReturnValue inferShape(const gm::Attrs& attrs, std::vector<std::vector<unsigned>>* in,
                             std::vector<std::vector<unsigned>>* out) {
  ISqrtCovParam p;
  if (!p.parse(attrs) ||
      !gm::check_counts(kOp, "shape inference", in->size(), p.num_inputs(), out->size(), 1))
    return gm::MX_FAIL;
  const gm::Shape& s = (*in)[0];
  if (s.size() != 4) {
    MX_ERROR_MSG << kOp << ": input 'data' must be 4-D (B, C, H, W), got "
                 << (s.empty() ? std::string("ndim 0 or an unknown shape")
                               : "ndim " + std::to_string(s.size()));
    return gm::MX_FAIL;
  }
  const gm::Want w = gm::want_of(s);
  if (w[1] == 0 || w[2] == 0 || w[3] == 0) {
    MX_ERROR_MSG << kOp << ": input 'data' needs at least one channel and one position, got "
                 << "shape " << gm::shape_str(w);
    return gm::MX_FAIL;
  }
  int64_t K = -1;
  if (p.vectorize) {
    const gm::Shape& si = (*in)[1];
    if (si.size() > 1) {
      MX_ERROR_MSG << kOp << ": input 'index' must be 1-D (K,), got ndim " << si.size();
      return gm::MX_FAIL;
    }
    if (!gm::settle_shape(kOp, "input", "index", &(*in)[1], {-1}, "(K,)")) return gm::MX_FAIL;
    if (gm::dim_known((*in)[1][0])) K = (*in)[1][0];
  }
  return gm::settle_shape(kOp, "output", "out", &(*out)[0], out_shape(p, w[0], w[1], K),
                          p.vectorize ? "(B, K), K = len(index)" : "(B, C, C)")
             ? gm::MX_SUCCESS
             : gm::MX_FAIL;
}

// inputs: [data]; outputs: [out]
gm::MXReturnValue forward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                          std::vector<MXTensor>* outputs, const OpResource& res) {
  ISqrtCovParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "forward", inputs->size(), p.num_inputs(), outputs->size(), 1))
    return gm::MX_FAIL;
  MXTensor& x = (*inputs)[0];
  Dims d;
  if (!check_inputs(p, *inputs, 0, &d)) return gm::MX_FAIL;
  if (!gm::check_output(kOp, "out", (*outputs)[0], out_shape(p, d.B, d.C, d.K), x.dtype))
    return gm::MX_FAIL;
  if (d.B == 0) return gm::MX_SUCCESS;
  if (x.dtype == mxnet::ext::kFloat64) return run_forward<double>(p, d, x, (*outputs)[0], res);
  return run_forward<float>(p, d, x, (*outputs)[0], res);
}

// inputs: [grad_out, data, (index,) out]; outputs: [grad_data, (grad_index: zeros)]. Extension operators are not told `req`
// (they always overwrite); the Gluon block puts a stock identity in front of a graph input so
// that grad_req='add' accumulates (gluon_models/nn/representation.py).
gm::MXReturnValue backward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                           std::vector<MXTensor>* outputs, const OpResource& res) {
  ISqrtCovParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  const size_t nin = p.num_inputs();
  if (!gm::check_counts(kOp, "backward", inputs->size(), 2 + nin, outputs->size(), nin))
    return gm::MX_FAIL;
  MXTensor& gout = (*inputs)[0];
  MXTensor& x = (*inputs)[1];
  Dims d;
  if (!check_inputs(p, *inputs, 1, &d)) return gm::MX_FAIL;
  const std::vector<int64_t> want = out_shape(p, d.B, d.C, d.K);
  if (gout.dtype != x.dtype || gout.shape != want) {
    MX_ERROR_MSG << kOp << ": the output gradient has shape " << gm::shape_str(gout.shape)
                 << " and dtype " << gm::dtype_name(gout.dtype) << ", expected "
                 << gm::shape_str(want) << " and " << gm::dtype_name(x.dtype);
    return gm::MX_FAIL;
  }
  if (!gm::check_output(kOp, "grad_data", (*outputs)[0], x.shape, x.dtype)) return gm::MX_FAIL;
  if (p.vectorize) {  // the positions get no gradient
    MXTensor& gi = (*outputs)[1];
    if (!gm::check_output(kOp, "grad_index", gi, (*inputs)[2].shape, mxnet::ext::kInt32))
      return gm::MX_FAIL;
    if (gi.size() > 0) {
      if (gi.ctx.dev_type == "gpu") {
#ifdef GM_WITH_CUDA
        const int err = gm_fm_zero_gpu(gi.data_ptr, gi.size() * 4, res.get_cuda_stream());
        if (err != 0) return gm::gpu_status(kOp, err);
#endif
      } else {
        std::memset(gi.data_ptr, 0, gi.size() * 4);
      }
    }
  }
  if (d.B == 0) return gm::MX_SUCCESS;
  if (x.dtype == mxnet::ext::kFloat64)
    return run_backward<double>(p, d, gout, x, (*outputs)[0], res);
  return run_backward<float>(p, d, gout, x, (*outputs)[0], res);
}

}  // namespace

REGISTER_OP(ISqrtCov)
    .setParseAttrs(parseAttrs)
    .setInferType(inferType)
    .setInferShape(inferShape)
    .GM_PASSES(forward, backward);
