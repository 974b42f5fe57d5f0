// FMConvolution1 / FMConvolution3: the quadratic term of the Factorized Bilinear (FB) layer
// (Li, Wang, Liu, Hou, "Factorized Bilinear Models for Image Recognition", ICCV 2017,
// arXiv:1611.05709), named and parameterised like the authors' operators so their symbols
// load (spec fbn.md sections 1-3).
//
// For every im2col patch x (length K = (C/G)*kh*kw, rows r = (c*kh + ky)*kw + kx) and output
// channel o of group g = o / (O/G), with V_o = weight[o].reshape(Fn, K) and mask m (Fn,):
//
//   out[n, o, oy, ox] = bias[o] + sum_f m_f^2 [ (v_{o,f} . x)^2 - sum_r v_{o,f,r}^2 x_r^2 ]
//
// (every pair d != e counted twice, no 1/2, no diagonal terms: the authors' scale). The mask
// is an input because extension operators are not told train/inference mode; the Gluon block
// makes it (gluon_models/nn/fb.py) and it receives a zero gradient.
//
// Both operators compute the batched two-GEMM form of spec 1.5 per (group, image chunk,
// output-channel chunk): Z = W X (one GEMM), C = D (X*X) (second GEMM) with
// D[o, r] = sum_f m_f^2 W[o, f, r]^2, then y = sum_f m_f^2 Z^2 - C + b. They differ only in
// how they cut the work, i.e. in the temporary memory they request:
//   FMConvolution3  all output channels of a group at once; images in chunks that fit
//                   `workspace` MB, but never less than one image (the speed version);
//   FMConvolution1  temporary memory bounded by `workspace` MB: images in chunks with all
//                   output channels, or output channels in chunks when the weights dominate
//                   the traffic or one image does not fit, down to one image x one channel
//                   (the authors' per-channel loop).
// Both cap a block at about 2048 columns (images x output positions), which is enough for
// full-speed GEMMs, so the default workspace only matters for large images.
// Every temporary buffer is one pool from OpResource::alloc_cpu/alloc_gpu (the same memory on
// every call), kept below 2 GiB because the size argument is an int.
//
// Backward (spec 1.6; P = 2 m^2 Z * Gy, the factor masks folded in):
//   dX = W^T P - 2 (D^T Gy) * X        -> col2im (exact adjoint of im2col)
//   dW = P X^T - 2 m_f^2 W * (Gy (X*X)^T)
//   db = sum Gy,  dmask = 0
// legacy_data_grad=True reproduces the authors' data gradient, which omits the "* X":
//   dX = W^T P - 2 (D^T Gy).
// Z is recomputed in backward (extension operators have no hidden outputs to keep it).
// `workspace`, `p` and `eps` keep their original meaning and defaults; `p` (DropFactor rate)
// and `eps` (unused by the authors too) do not change what the operator computes.
#include <algorithm>
#include <climits>
#include <cstring>

#include "gm_blas.h"  // gm::gemm: the BLAS setup.py linked, cut across the OpenMP threads
#include "gm_common.h"
#include "gm_cuda.h"  // gm_fm_geom; the launchers are only called when GM_WITH_CUDA is set

using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;

namespace {

enum class Variant { kOp1, kOp3 };

template <Variant V>
const char* op_name() {
  return V == Variant::kOp1 ? "FMConvolution1" : "FMConvolution3";
}

using Geom = gm_fm_geom;

// ---- parameters ---------------------------------------------------------------------------
struct FMParam {
  std::vector<int64_t> kernel, stride, dilate, pad;
  int64_t num_filter, num_group, num_factor, workspace;
  bool no_bias, legacy_data_grad;
  double p, eps;

  bool parse(const gm::Attrs& attrs, const char* op) {
    gm::AttrReader r(attrs, op);
    // Tuple elements <= 65536 keep every product below int64 overflow.
    const bool ok = r.get_tuple("kernel", &kernel, 2, true, {}, 1, 65536) &&
                    r.get_int("num_filter", &num_filter, true, 0, 1, 100000) &&
                    r.get_tuple("stride", &stride, 2, false, {1, 1}, 1, 65536) &&
                    r.get_tuple("dilate", &dilate, 2, false, {1, 1}, 1, 65536) &&
                    r.get_tuple("pad", &pad, 2, false, {0, 0}, 0, 65536) &&
                    r.get_int("num_group", &num_group, false, 1, 1, 100000) &&
                    r.get_int("num_factor", &num_factor, false, 1, 1, 10000) &&
                    r.get_bool("no_bias", &no_bias, false) &&
                    r.get_int("workspace", &workspace, false, 512, 0, 4096) &&
                    r.get_float("p", &p, false, 0.5, 0.0, 1.0, false) &&
                    r.get_float("eps", &eps, false, 1e-10, 0.0, 1e300) &&
                    r.get_bool("legacy_data_grad", &legacy_data_grad, false) && r.finish();
    if (!ok) return false;
    if (num_filter % num_group != 0) {
      MX_ERROR_MSG << op << ": argument 'num_filter' = " << num_filter
                   << " is not divisible by argument 'num_group' = " << num_group;
      return false;
    }
    return true;
  }
  int num_inputs() const { return no_bias ? 3 : 4; }
  int mask_slot() const { return no_bias ? 2 : 3; }
};

using gm::shape_str;

// Output extent along one axis; false (with a message naming 'kernel') if it does not fit.
bool out_extent(const char* op, const char* axis, int64_t in, int64_t k, int64_t s, int64_t p,
                int64_t d, int64_t* out) {
  const int64_t extent = d * (k - 1) + 1;
  if (extent > in + 2 * p) {
    MX_ERROR_MSG << op << ": argument 'kernel' " << axis << " = " << k << " (dilated extent "
                 << extent << " with 'dilate' = " << d << ") is larger than the padded input "
                 << axis << " " << in << " + 2 * " << p << " (argument 'pad')";
    return false;
  }
  *out = (in + 2 * p - extent) / s + 1;
  return true;
}

// Geometry from a known data shape; checks channel divisibility and the kernel extent.
bool make_geom(const char* op, const FMParam& p, const std::vector<int64_t>& data, Geom* g) {
  if (data.size() != 4) {
    MX_ERROR_MSG << op << ": input 'data' must be 4-D (N, C, H, W), got shape "
                 << shape_str(data);
    return false;
  }
  g->N = data[0];
  g->C = data[1];
  g->H = data[2];
  g->W = data[3];
  if (g->C % p.num_group != 0) {
    MX_ERROR_MSG << op << ": channels C = " << g->C << " of input 'data' are not divisible by "
                 << "argument 'num_group' = " << p.num_group;
    return false;
  }
  g->O = p.num_filter;
  g->Fn = p.num_factor;
  g->G = p.num_group;
  g->Cg = g->C / g->G;
  g->Og = g->O / g->G;
  g->kh = p.kernel[0];
  g->kw = p.kernel[1];
  g->sh = p.stride[0];
  g->sw = p.stride[1];
  g->ph = p.pad[0];
  g->pw = p.pad[1];
  g->dh = p.dilate[0];
  g->dw = p.dilate[1];
  if (!out_extent(op, "height", g->H, g->kh, g->sh, g->ph, g->dh, &g->OH) ||
      !out_extent(op, "width", g->W, g->kw, g->sw, g->pw, g->dw, &g->OW))
    return false;
  g->L = g->OH * g->OW;
  g->K = g->Cg * g->kh * g->kw;
  return true;
}

std::vector<int64_t> weight_shape(const FMParam& p, int64_t C) {
  return {p.num_filter, p.num_factor, C / p.num_group, p.kernel[0], p.kernel[1]};
}

// Compares a known input shape with the expected one; the message names the input.
bool check_shape(const char* op, const char* name, const std::vector<int64_t>& got,
                 const std::vector<int64_t>& want, const char* meaning) {
  if (got == want) return true;
  MX_ERROR_MSG << op << ": input '" << name << "' has shape " << shape_str(got) << ", expected "
               << shape_str(want) << " = " << meaning;
  return false;
}

const char* kWeightMeaning = "(num_filter, num_factor, C / num_group, kernel_h, kernel_w)";

// ---- work plan: how the call is cut into blocks of (images x output channels) -------------
// A block of nb images (S = nb*L columns) and oc output channels of one group needs, in
// elements: forward  X, X*X (K x S each), D (oc x K), Z (oc*Fn x S), C (oc x S);
//           backward X, X*X, dX, T (K x S each), D, E (oc x K each), Z (oc*Fn x S), Gy (oc x S).
constexpr int64_t kAlign = 64;                         // bytes, each buffer of the pool
constexpr int64_t kMaxPool = INT_MAX - 16 * kAlign;   // alloc_cpu/alloc_gpu take an int

struct Plan {
  int64_t nb, oc, bytes;
};

int64_t block_bytes(const Geom& g, int64_t nb, int64_t oc, bool backward, int64_t elem) {
  const int64_t S = nb * g.L;
  const int64_t n = backward ? 4 * g.K * S + oc * (2 * g.K + g.Fn * S + S)
                             : 2 * g.K * S + oc * (g.K + g.Fn * S + S);
  return n * elem + 8 * kAlign;
}

// Largest v in [1, hi] with f(v) <= budget (f increasing); 1 if none fits.
template <typename Fn>
int64_t largest_fitting(int64_t hi, int64_t budget, Fn f) {
  int64_t lo = 1;
  if (f(lo) > budget) return 1;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (f(mid) <= budget) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// Images per block are also capped at kTargetCols / L: about 2048 columns already run the
// GEMMs at full speed on the CPU (measured at the CIFAR and ImageNet FBN heads), so larger
// blocks would only cost memory. FMConvolution3 cuts output channels only beyond 2 GiB.
constexpr int64_t kTargetCols = 2048;

template <Variant V>
bool make_plan(const Geom& g, const FMParam& p, bool backward, int64_t elem, Plan* plan) {
  const char* op = op_name<V>();
  auto bytes = [&](int64_t nb, int64_t oc) { return block_bytes(g, nb, oc, backward, elem); };
  const int64_t budget = std::min<int64_t>(p.workspace << 20, kMaxPool);
  const int64_t max_nb = std::max<int64_t>(1, std::min(g.N, (kTargetCols + g.L - 1) / g.L));
  // FMConvolution3 never cuts output channels below the 2 GiB limit and may exceed the
  // workspace by what one image needs; FMConvolution1 stays within the workspace.
  const int64_t limit = V == Variant::kOp3 ? std::max(budget, std::min(bytes(1, g.Og), kMaxPool))
                                           : budget;
  int64_t nb = max_nb, oc = g.Og;
  if (bytes(max_nb, g.Og) <= limit) {
    // one block of images holds every output channel
  } else if (V == Variant::kOp1 && g.Og * g.Fn > 4 * max_nb * g.L) {
    // Weight-heavy (the ImageNet heads): every image chunk re-reads the group's weights and
    // its weight gradient, every output-channel chunk re-reads the 4 K x S column buffers,
    // so keep the images together and cut the output channels.
    nb = largest_fitting(max_nb, limit, [&](int64_t v) { return bytes(v, 1); });
    oc = largest_fitting(g.Og, limit, [&](int64_t v) { return bytes(nb, v); });
  } else if (bytes(1, g.Og) <= limit) {
    nb = largest_fitting(max_nb, limit, [&](int64_t v) { return bytes(v, g.Og); });
  } else {
    nb = 1;
    oc = largest_fitting(g.Og, limit, [&](int64_t v) { return bytes(1, v); });
  }
  plan->nb = nb;
  plan->oc = oc;
  plan->bytes = bytes(nb, oc);
  if (plan->bytes > kMaxPool) {
    MX_ERROR_MSG << op << ": one image and one output channel need " << (plan->bytes >> 20)
                 << " MB of temporary memory, more than the 2 GiB a single request can hold "
                 << "(argument 'workspace' cannot help; use a smaller input or kernel)";
    return false;
  }
  return true;
}

// Carves the pool into aligned buffers.
struct Carver {
  char* p;
  template <typename T>
  T* take(int64_t n) {
    T* out = reinterpret_cast<T*>(p);
    p += ((n * static_cast<int64_t>(sizeof(T)) + kAlign - 1) / kAlign) * kAlign;
    return out;
  }
};

// ---- pure CPU kernels -----------------------------------------------------------------------
bool plain_cols(const Geom& g) {  // 1x1, stride 1, no pad: a column block is a channel slice
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

template <typename T>
struct CpuBackend {
  bool ok() const { return true; }

  void gemm_(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
             const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    gm::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }

  void im2col(const Geom& g, const T* x, int64_t n0, int64_t nb, int64_t gi, T* X, T* XX) {
    const int64_t S = nb * g.L, khw = g.kh * g.kw;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t r = 0; r < g.K; ++r) {
      for (int64_t nl = 0; nl < nb; ++nl) {
        const int64_t c = r / khw, ky = (r / g.kw) % g.kh, kx = r % g.kw;
        const T* plane = x + ((n0 + nl) * g.C + gi * g.Cg + c) * g.H * g.W;
        T* dst = X + r * S + nl * g.L;
        T* dst2 = XX + r * S + nl * g.L;
        if (plain_cols(g)) {
          for (int64_t l = 0; l < g.L; ++l) {
            dst[l] = plane[l];
            dst2[l] = plane[l] * plane[l];
          }
          continue;
        }
        for (int64_t oy = 0; oy < g.OH; ++oy) {
          const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
          for (int64_t ox = 0; ox < g.OW; ++ox) {
            const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
            const T v = (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) ? plane[iy * g.W + ix] : T(0);
            dst[oy * g.OW + ox] = v;
            dst2[oy * g.OW + ox] = v * v;
          }
        }
      }
    }
  }

  // Gathers, for each input pixel, the taps that read it; writes every pixel of the planes.
  void col2im(const Geom& g, const T* dX, int64_t n0, int64_t nb, int64_t gi, T* dx) {
    const int64_t S = nb * g.L;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t nl = 0; nl < nb; ++nl) {
      for (int64_t c = 0; c < g.Cg; ++c) {
        T* plane = dx + ((n0 + nl) * g.C + gi * g.Cg + c) * g.H * g.W;
        if (plain_cols(g)) {
          std::memcpy(plane, dX + c * S + nl * g.L, g.L * sizeof(T));
          continue;
        }
        for (int64_t iy = 0; iy < g.H; ++iy) {
          for (int64_t ix = 0; ix < g.W; ++ix) {
            T acc = 0;
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
            plane[iy * g.W + ix] = acc;
          }
        }
      }
    }
  }

  // The two sums over factors (D here, sum_f m_f^2 Z^2 in assemble_out) accumulate in double:
  // the output is their difference, the off-diagonal pairs, which is much smaller than either
  // term, so float rounding over F terms is amplified (measured with float accumulators: 2.5e-4
  // relative at F = 1000, 1.3e-2 at F = 10000; the stock twin 4e-5 / 1.1e-4). Rows are done in
  // tiles of kAccTile so the accumulators stay in registers and the loop over the contiguous
  // axis still vectorises; these loops are O(F S) next to the O(F K S) GEMM, so their cost
  // barely shows.
  static constexpr int64_t kAccTile = 256;

  void mask_sq_norm(const T* W, const T* m, int64_t oc, int64_t Fn, int64_t K, T* D) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t j = 0; j < oc; ++j) {
      for (int64_t r0 = 0; r0 < K; r0 += kAccTile) {
        const int64_t n = std::min(kAccTile, K - r0);
        double acc[kAccTile];
        for (int64_t t = 0; t < n; ++t) acc[t] = 0;
        for (int64_t f = 0; f < Fn; ++f) {
          const double m2 = static_cast<double>(m[f]) * m[f];
          const T* w = W + (j * Fn + f) * K + r0;
          for (int64_t t = 0; t < n; ++t) acc[t] += m2 * (static_cast<double>(w[t]) * w[t]);
        }
        for (int64_t t = 0; t < n; ++t) D[j * K + r0 + t] = static_cast<T>(acc[t]);
      }
    }
  }

  void assemble_out(const T* Z, const T* Cc, const T* m, const T* bias, int64_t oc, int64_t Fn,
                    int64_t nb, int64_t L, T* y, int64_t n0, int64_t o0, int64_t O) {
    const int64_t S = nb * L;
#pragma omp parallel for collapse(3) schedule(static)
    for (int64_t j = 0; j < oc; ++j) {
      for (int64_t nl = 0; nl < nb; ++nl) {
        for (int64_t l0 = 0; l0 < L; l0 += kAccTile) {
          const int64_t n = std::min(kAccTile, L - l0);
          double acc[kAccTile];
          for (int64_t t = 0; t < n; ++t) acc[t] = 0;
          for (int64_t f = 0; f < Fn; ++f) {
            const double m2 = static_cast<double>(m[f]) * m[f];
            const T* z = Z + (j * Fn + f) * S + nl * L + l0;
            for (int64_t t = 0; t < n; ++t) acc[t] += m2 * (static_cast<double>(z[t]) * z[t]);
          }
          const double b = bias ? static_cast<double>(bias[j]) : 0.0;
          const T* cr = Cc + j * S + nl * L + l0;
          T* yr = y + ((n0 + nl) * O + o0 + j) * L + l0;
          for (int64_t t = 0; t < n; ++t) yr[t] = static_cast<T>(acc[t] - cr[t] + b);
        }
      }
    }
  }

  void gather_gy(const T* gy, int64_t n0, int64_t nb, int64_t o0, int64_t oc, int64_t O,
                 int64_t L, T* Gy) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t j = 0; j < oc; ++j)
      for (int64_t nl = 0; nl < nb; ++nl)
        std::memcpy(Gy + j * nb * L + nl * L, gy + ((n0 + nl) * O + o0 + j) * L, L * sizeof(T));
  }

  void make_p(T* Z, const T* Gy, const T* m, int64_t oc, int64_t Fn, int64_t S) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t j = 0; j < oc; ++j) {
      for (int64_t f = 0; f < Fn; ++f) {
        const T c = 2 * m[f] * m[f];
        T* z = Z + (j * Fn + f) * S;
        const T* gr = Gy + j * S;
        for (int64_t s = 0; s < S; ++s) z[s] *= c * gr[s];
      }
    }
  }

  void dw_correction(T* dW, const T* W, const T* E, const T* m, int64_t oc, int64_t Fn,
                     int64_t K) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t j = 0; j < oc; ++j) {
      for (int64_t f = 0; f < Fn; ++f) {
        const T c = 2 * m[f] * m[f];
        T* dw = dW + (j * Fn + f) * K;
        const T* w = W + (j * Fn + f) * K;
        const T* e = E + j * K;
        for (int64_t r = 0; r < K; ++r) dw[r] -= c * w[r] * e[r];
      }
    }
  }

  void dx_correction(T* dX, const T* Tm, const T* X, int64_t n, bool legacy) {
    if (legacy) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) dX[i] -= 2 * Tm[i];
    } else {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) dX[i] -= 2 * Tm[i] * X[i];
    }
  }

  void bias_grad(const T* gy, int64_t N, int64_t O, int64_t L, T* db) {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < O; ++o) {
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* g = gy + (n * O + o) * L;
        for (int64_t l = 0; l < L; ++l) acc += g[l];
      }
      db[o] = static_cast<T>(acc);
    }
  }

  void zero(T* p, int64_t n) { std::memset(p, 0, n * sizeof(T)); }
};

#ifdef GM_WITH_CUDA
// Same interface, every step a launcher from fmconv_kernels.cu on MXNet's stream. The first
// failing launch is remembered and the remaining steps are skipped.
template <typename T>
struct GpuBackend {
  void* stream;
  int err = 0;
  static constexpr int kElem = sizeof(T);
  bool ok() const { return err == 0; }
  void keep(int e) {
    if (err == 0) err = e;
  }

  void gemm_(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
             const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    if (ok())
      keep(gm_fm_gemm_gpu(kElem, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, stream));
  }
  void im2col(const Geom& g, const T* x, int64_t n0, int64_t nb, int64_t gi, T* X, T* XX) {
    if (ok()) keep(gm_fm_im2col_gpu(kElem, &g, x, n0, nb, gi, X, XX, stream));
  }
  void col2im(const Geom& g, const T* dX, int64_t n0, int64_t nb, int64_t gi, T* dx) {
    if (ok()) keep(gm_fm_col2im_gpu(kElem, &g, dX, n0, nb, gi, dx, stream));
  }
  void mask_sq_norm(const T* W, const T* m, int64_t oc, int64_t Fn, int64_t K, T* D) {
    if (ok()) keep(gm_fm_mask_sq_norm_gpu(kElem, W, m, oc, Fn, K, D, stream));
  }
  void assemble_out(const T* Z, const T* Cc, const T* m, const T* bias, int64_t oc, int64_t Fn,
                    int64_t nb, int64_t L, T* y, int64_t n0, int64_t o0, int64_t O) {
    if (ok())
      keep(gm_fm_assemble_out_gpu(kElem, Z, Cc, m, bias, oc, Fn, nb, L, y, n0, o0, O, stream));
  }
  void gather_gy(const T* gy, int64_t n0, int64_t nb, int64_t o0, int64_t oc, int64_t O,
                 int64_t L, T* Gy) {
    if (ok()) keep(gm_fm_gather_gy_gpu(kElem, gy, n0, nb, o0, oc, O, L, Gy, stream));
  }
  void make_p(T* Z, const T* Gy, const T* m, int64_t oc, int64_t Fn, int64_t S) {
    if (ok()) keep(gm_fm_make_p_gpu(kElem, Z, Gy, m, oc, Fn, S, stream));
  }
  void dw_correction(T* dW, const T* W, const T* E, const T* m, int64_t oc, int64_t Fn,
                     int64_t K) {
    if (ok()) keep(gm_fm_dw_correction_gpu(kElem, dW, W, E, m, oc, Fn, K, stream));
  }
  void dx_correction(T* dX, const T* Tm, const T* X, int64_t n, bool legacy) {
    if (ok()) keep(gm_fm_dx_correction_gpu(kElem, dX, Tm, X, n, legacy, stream));
  }
  void bias_grad(const T* gy, int64_t N, int64_t O, int64_t L, T* db) {
    if (ok()) keep(gm_fm_bias_grad_gpu(kElem, gy, N, O, L, db, stream));
  }
  void zero(T* p, int64_t n) {
    if (ok()) keep(gm_fm_zero_gpu(p, n * static_cast<int64_t>(sizeof(T)), stream));
  }
};
#endif

// ---- the two passes, written once for both backends ------------------------------------------
template <typename T, typename Be>
void run_forward(Be& be, const Geom& g, const Plan& pl, const T* x, const T* w, const T* bias,
                 const T* m, T* y, void* pool) {
  const int64_t Smax = pl.nb * g.L;
  Carver cv{static_cast<char*>(pool)};
  T* X = cv.take<T>(g.K * Smax);
  T* XX = cv.take<T>(g.K * Smax);
  T* D = cv.take<T>(pl.oc * g.K);
  T* Z = cv.take<T>(pl.oc * g.Fn * Smax);
  T* Cc = cv.take<T>(pl.oc * Smax);
  for (int64_t gi = 0; gi < g.G; ++gi) {
    for (int64_t n0 = 0; n0 < g.N; n0 += pl.nb) {
      const int64_t nb = std::min(pl.nb, g.N - n0), S = nb * g.L;
      be.im2col(g, x, n0, nb, gi, X, XX);
      for (int64_t j0 = 0; j0 < g.Og; j0 += pl.oc) {
        const int64_t oc = std::min(pl.oc, g.Og - j0), o0 = gi * g.Og + j0;
        const T* Wc = w + o0 * g.Fn * g.K;
        be.mask_sq_norm(Wc, m, oc, g.Fn, g.K, D);
        be.gemm_(false, false, oc * g.Fn, S, g.K, T(1), Wc, g.K, X, S, T(0), Z, S);  // Z = W X
        be.gemm_(false, false, oc, S, g.K, T(1), D, g.K, XX, S, T(0), Cc, S);        // D (X*X)
        be.assemble_out(Z, Cc, m, bias ? bias + o0 : nullptr, oc, g.Fn, nb, g.L, y, n0, o0, g.O);
      }
    }
  }
}

template <typename T, typename Be>
void run_backward(Be& be, const Geom& g, const Plan& pl, bool legacy, const T* gy, const T* x,
                  const T* w, const T* m, T* dx, T* dw, T* db, T* dm, void* pool) {
  const int64_t Smax = pl.nb * g.L;
  Carver cv{static_cast<char*>(pool)};
  T* X = cv.take<T>(g.K * Smax);
  T* XX = cv.take<T>(g.K * Smax);
  T* dX = cv.take<T>(g.K * Smax);
  T* Tm = cv.take<T>(g.K * Smax);
  T* D = cv.take<T>(pl.oc * g.K);
  T* E = cv.take<T>(pl.oc * g.K);
  T* Z = cv.take<T>(pl.oc * g.Fn * Smax);
  T* Gy = cv.take<T>(pl.oc * Smax);
  if (db) be.bias_grad(gy, g.N, g.O, g.L, db);
  be.zero(dm, g.Fn);  // the mask is a constant of the pass (spec 2.4)
  if (g.N == 0) be.zero(dw, g.O * g.Fn * g.K);  // no image chunk below writes it
  for (int64_t gi = 0; gi < g.G; ++gi) {
    for (int64_t n0 = 0; n0 < g.N; n0 += pl.nb) {
      const int64_t nb = std::min(pl.nb, g.N - n0), S = nb * g.L;
      be.im2col(g, x, n0, nb, gi, X, XX);
      for (int64_t j0 = 0; j0 < g.Og; j0 += pl.oc) {
        const int64_t oc = std::min(pl.oc, g.Og - j0), o0 = gi * g.Og + j0;
        const T* Wc = w + o0 * g.Fn * g.K;
        T* dWc = dw + o0 * g.Fn * g.K;
        const T first_o = j0 == 0 ? T(0) : T(1);  // dX, T accumulate over output chunks
        const T first_n = n0 == 0 ? T(0) : T(1);  // dW accumulates over image chunks
        be.mask_sq_norm(Wc, m, oc, g.Fn, g.K, D);
        be.gather_gy(gy, n0, nb, o0, oc, g.O, g.L, Gy);
        be.gemm_(false, false, oc * g.Fn, S, g.K, T(1), Wc, g.K, X, S, T(0), Z, S);  // Z = W X
        be.make_p(Z, Gy, m, oc, g.Fn, S);                                            // P
        be.gemm_(true, false, g.K, S, oc * g.Fn, T(1), Wc, g.K, Z, S, first_o, dX, S);  // W^T P
        be.gemm_(true, false, g.K, S, oc, T(1), D, g.K, Gy, S, first_o, Tm, S);      // D^T Gy
        be.gemm_(false, true, oc * g.Fn, g.K, S, T(1), Z, S, X, S, first_n, dWc, g.K);  // P X^T
        be.gemm_(false, true, oc, g.K, S, T(1), Gy, S, XX, S, T(0), E, g.K);  // Gy (X*X)^T
        be.dw_correction(dWc, Wc, E, m, oc, g.Fn, g.K);
      }
      be.dx_correction(dX, Tm, X, g.K * S, legacy);
      be.col2im(g, dX, n0, nb, gi, dx);
    }
  }
}

// ---- tensor checks shared by the hooks and the passes ---------------------------------------
// The forward inputs' names, p.num_inputs() of them.
const char* const* input_names(const FMParam& p) {
  static const char* with_bias[] = {"data", "weight", "bias", "factor_mask"};
  static const char* without[] = {"data", "weight", "factor_mask"};
  return p.no_bias ? without : with_bias;
}

// Validates the forward inputs (dtypes, shapes; the hooks checked their count) and returns the
// geometry.
bool check_inputs(const char* op, const FMParam& p, const std::vector<MXTensor>& in, Geom* g) {
  if (!gm::check_float_inputs(op, input_names(p), in, p.num_inputs())) return false;
  if (!make_geom(op, p, in[0].shape, g)) return false;
  if (!check_shape(op, "weight", in[1].shape, weight_shape(p, g->C), kWeightMeaning))
    return false;
  if (!p.no_bias && !check_shape(op, "bias", in[2].shape, {p.num_filter}, "(num_filter,)"))
    return false;
  return check_shape(op, "factor_mask", in[p.mask_slot()].shape, {p.num_factor},
                     "(num_factor,)");
}

// ---- lib_api hooks ----------------------------------------------------------------------------
template <Variant V>
gm::MXReturnValue parseAttrs(const gm::Attrs& attrs, int* num_in, int* num_out) {
  FMParam p;
  if (!p.parse(attrs, op_name<V>())) return gm::MX_FAIL;
  *num_in = p.num_inputs();
  *num_out = 1;
  return gm::MX_SUCCESS;
}

// All inputs share one dtype, float32 or float64; unknown ones are filled from the known.
template <Variant V>
gm::MXReturnValue inferType(const gm::Attrs& attrs, std::vector<int>* in, std::vector<int>* out) {
  const char* op = op_name<V>();
  FMParam p;
  if (!p.parse(attrs, op) ||
      !gm::check_counts(op, "type inference", in->size(), p.num_inputs(), out->size(), 1))
    return gm::MX_FAIL;
  return gm::same_float_type(op, input_names(p), p.num_inputs(), in, out);
}

// Fills weight (O, Fn, C/G, kh, kw), bias (O,) and factor_mask (Fn,) from the attributes and
// the data shape (Gluon deferred initialisation relies on it), checks the given ones, and
// sets out = (N, O, OH, OW) with OH = (H + 2 ph - (dh (kh - 1) + 1)) / sh + 1. Dimensions that
// are not known yet stay unknown, but every slot gets its ndim (gm_common.h: an output left
// empty would become ()). Zero extents are real: N = 0 gives an empty output, C = 0 an
// all-bias output, H or W = 0 with enough padding an output of padding only.
template <Variant V>
gm::MXReturnValue inferShape(const gm::Attrs& attrs, std::vector<std::vector<unsigned>>* in,
                             std::vector<std::vector<unsigned>>* out) {
  const char* op = op_name<V>();
  FMParam p;
  if (!p.parse(attrs, op)) return gm::MX_FAIL;
  if (!gm::check_counts(op, "shape inference", in->size(), p.num_inputs(), out->size(), 1))
    return gm::MX_FAIL;
  gm::Shape& data = (*in)[0];
  if (data.size() != 4) {
    MX_ERROR_MSG << op << ": input 'data' must be 4-D (N, C, H, W), got "
                 << (data.empty() ? std::string("ndim 0 or an unknown shape")
                                  : "ndim " + std::to_string(data.size()));
    return gm::MX_FAIL;
  }
  // data's C from a known weight (C = num_group * weight's axis 2), then the weight from C.
  const gm::Shape& w = (*in)[1];
  if (!gm::dim_known(data[1]) && w.size() == 5 && gm::dim_known(w[2]))
    data[1] = static_cast<unsigned>(w[2] * p.num_group);
  const gm::Want d = gm::want_of(data);
  if (d[1] >= 0 && d[1] % p.num_group != 0) {
    MX_ERROR_MSG << op << ": channels C = " << d[1] << " of input 'data' are not divisible by "
                 << "argument 'num_group' = " << p.num_group;
    return gm::MX_FAIL;
  }
  gm::Want oh_ow = {-1, -1};
  const char* axes[] = {"height", "width"};
  for (int a = 0; a < 2; ++a) {
    if (d[2 + a] >= 0 &&
        !out_extent(op, axes[a], d[2 + a], p.kernel[a], p.stride[a], p.pad[a], p.dilate[a],
                    &oh_ow[a]))
      return gm::MX_FAIL;
  }
  const int64_t cg = d[1] >= 0 ? d[1] / p.num_group : -1;
  const gm::Want want_w = {p.num_filter, p.num_factor, cg, p.kernel[0], p.kernel[1]};
  const bool ok =
      gm::settle_shape(op, "input", "weight", &(*in)[1], want_w, kWeightMeaning) &&
      (p.no_bias ||
       gm::settle_shape(op, "input", "bias", &(*in)[2], {p.num_filter}, "(num_filter,)")) &&
      gm::settle_shape(op, "input", "factor_mask", &(*in)[p.mask_slot()], {p.num_factor},
                       "(num_factor,)") &&
      gm::settle_shape(op, "output", "out", &(*out)[0], {d[0], p.num_filter, oh_ow[0], oh_ow[1]},
                       "(N, num_filter, OH, OW)");
  return ok ? gm::MX_SUCCESS : gm::MX_FAIL;
}

// Allocates `bytes` of workspace on the device the tensors live on and runs
// `body(backend, pool)` there; one place for the device switch of both passes.
template <typename T, typename Body>
gm::MXReturnValue on_device(const char* op, bool gpu, size_t bytes, const OpResource& res,
                            Body body) {
  if (gpu) {
#ifdef GM_WITH_CUDA
    void* pool = res.alloc_gpu(static_cast<int>(bytes));
    if (!pool) {
      MX_ERROR_MSG << op << ": cannot allocate " << (bytes >> 20) << " MB of GPU workspace";
      return gm::MX_FAIL;
    }
    GpuBackend<T> be{res.get_cuda_stream()};
    body(be, pool);
    return gm::gpu_status(op, be.err);
#else
    return gm::gpu_status(op, -1);
#endif
  }
  void* pool = res.alloc_cpu(static_cast<int>(bytes));
  if (!pool) {
    MX_ERROR_MSG << op << ": cannot allocate " << (bytes >> 20) << " MB of workspace";
    return gm::MX_FAIL;
  }
  CpuBackend<T> be;
  body(be, pool);
  return gm::MX_SUCCESS;
}

template <Variant V, typename T>
gm::MXReturnValue dispatch_forward(const Geom& g, const FMParam& p, std::vector<MXTensor>& in,
                                   MXTensor& out, const OpResource& res) {
  Plan pl;
  if (!make_plan<V>(g, p, false, sizeof(T), &pl)) return gm::MX_FAIL;
  const T* bias = p.no_bias ? nullptr : in[2].data<T>();
  const T* m = in[p.mask_slot()].data<T>();
  return on_device<T>(op_name<V>(), in[0].ctx.dev_type == "gpu", pl.bytes, res,
                      [&](auto& be, void* pool) {
    run_forward<T>(be, g, pl, in[0].data<T>(), in[1].data<T>(), bias, m, out.data<T>(), pool);
  });
}

// inputs: [data, weight, bias (unless no_bias), factor_mask]; outputs: [out]
template <Variant V>
gm::MXReturnValue forward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                          std::vector<MXTensor>* outputs, const OpResource& res) {
  const char* op = op_name<V>();
  FMParam p;
  Geom g;
  if (!p.parse(attrs, op) ||
      !gm::check_counts(op, "forward", inputs->size(), p.num_inputs(), outputs->size(), 1) ||
      !check_inputs(op, p, *inputs, &g))
    return gm::MX_FAIL;
  if (!gm::check_output(op, "out", (*outputs)[0], {g.N, g.O, g.OH, g.OW}, (*inputs)[0].dtype))
    return gm::MX_FAIL;
  // N = 0: nothing to write. C = 0 (K = 0) or an all-padding input still has an output; the
  // general path computes it (empty sums are 0, so out = bias), see gm::gemm for K = 0.
  if (g.N == 0) return gm::MX_SUCCESS;
  if ((*inputs)[0].dtype == mxnet::ext::kFloat64)
    return dispatch_forward<V, double>(g, p, *inputs, (*outputs)[0], res);
  return dispatch_forward<V, float>(g, p, *inputs, (*outputs)[0], res);
}

template <Variant V, typename T>
gm::MXReturnValue dispatch_backward(const Geom& g, const FMParam& p, std::vector<MXTensor>& in,
                                    std::vector<MXTensor>& out, const OpResource& res) {
  Plan pl;
  if (!make_plan<V>(g, p, true, sizeof(T), &pl)) return gm::MX_FAIL;
  // in[0] = grad_out, in[1..] = forward inputs; out = one gradient per forward input.
  const T* gy = in[0].data<T>();
  const T* x = in[1].data<T>();
  const T* w = in[2].data<T>();
  const T* m = in[1 + p.mask_slot()].data<T>();
  T* dx = out[0].data<T>();
  T* dw = out[1].data<T>();
  T* db = p.no_bias ? nullptr : out[2].data<T>();
  T* dm = out[p.mask_slot()].data<T>();
  return on_device<T>(op_name<V>(), in[1].ctx.dev_type == "gpu", pl.bytes, res,
                      [&](auto& be, void* pool) {
    run_backward<T>(be, g, pl, p.legacy_data_grad, gy, x, w, m, dx, dw, db, dm, pool);
  });
}

// inputs:  [grad_out, data, weight, bias (unless no_bias), factor_mask, out]
// outputs: [grad_data, grad_weight, grad_bias (unless no_bias), grad_factor_mask (zeros)]
// Extension operators are not told `req`: every gradient is overwritten. The Gluon block feeds
// parameters through a stock identity so that grad_req='add' still accumulates (platform 2).
template <Variant V>
gm::MXReturnValue backward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                           std::vector<MXTensor>* outputs, const OpResource& res) {
  const char* op = op_name<V>();
  FMParam p;
  if (!p.parse(attrs, op)) return gm::MX_FAIL;
  const size_t nin = p.num_inputs();
  if (!gm::check_counts(op, "backward", inputs->size(), 2 + nin, outputs->size(), nin))
    return gm::MX_FAIL;
  std::vector<MXTensor> fwd_in(inputs->begin() + 1, inputs->begin() + 1 + nin);
  Geom g;
  if (!check_inputs(op, p, fwd_in, &g)) return gm::MX_FAIL;
  const MXTensor& gout = (*inputs)[0];
  const std::vector<int64_t> want = {g.N, g.O, g.OH, g.OW};
  if (gout.dtype != fwd_in[0].dtype) {
    MX_ERROR_MSG << op << ": the output gradient has dtype " << gm::dtype_name(gout.dtype)
                 << " but 'data' has " << gm::dtype_name(fwd_in[0].dtype);
    return gm::MX_FAIL;
  }
  if (!check_shape(op, "grad_out", gout.shape, want, "(N, num_filter, OH, OW)"))
    return gm::MX_FAIL;
  // Each gradient is written in full, with the shape and dtype of its input.
  for (size_t i = 0; i < nin; ++i) {
    const std::string name = std::string("grad_") + input_names(p)[i];
    if (!gm::check_output(op, name.c_str(), (*outputs)[i], fwd_in[i].shape, fwd_in[0].dtype))
      return gm::MX_FAIL;
  }
  if (fwd_in[0].dtype == mxnet::ext::kFloat64)
    return dispatch_backward<V, double>(g, p, *inputs, *outputs, res);
  return dispatch_backward<V, float>(g, p, *inputs, *outputs, res);
}

}  // namespace

REGISTER_OP(FMConvolution1)
    .setParseAttrs(parseAttrs<Variant::kOp1>)
    .setInferType(inferType<Variant::kOp1>)
    .setInferShape(inferShape<Variant::kOp1>)
    .GM_PASSES(forward<Variant::kOp1>, backward<Variant::kOp1>);

REGISTER_OP(FMConvolution3)
    .setParseAttrs(parseAttrs<Variant::kOp3>)
    .setInferType(inferType<Variant::kOp3>)
    .setInferShape(inferShape<Variant::kOp3>)
    .GM_PASSES(forward<Variant::kOp3>, backward<Variant::kOp3>);
