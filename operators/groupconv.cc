// GroupConv: a grouped 2-d convolution (no bias) on plain NCHW tensors, computed directly,
// for groups too narrow for a GEMM or a blocked-layout kernel: the primary convolutions of
// IGCNets (Zhang et al., ICCV 2017) have 1 or 2 channels per group in IGC-L100M2 and the
// CIFAR IGC networks (L = 24, M = 2).
//
//   GroupConv(data, weight, num_filter, num_group, kernel, stride=(1,1), pad=(0,0))
//     data    (N, C, H, W)            C divisible by num_group
//     weight  (num_filter, C / num_group, kh, kw)
//     out     (N, num_filter, OH, OW)  OH = (H + 2 ph - kh) / sh + 1, OW likewise
//   out[n, g*Og + o, oy, ox] = sum_{c, ky, kx} weight[g*Og + o, c, ky, kx]
//                                * data[n, g*Cg + c, oy*sh + ky - ph, ox*sw + kx - pw]
// (zero outside the image; Cg = C / num_group, Og = num_filter / num_group): MXNet's
// Convolution with no_bias=True and no dilation, up to the order of float additions.
//
// Why a native operator: MXNet's oneDNN backend computes such a convolution either with
// im2col + GEMM (plain layout, short GEMMs) or, its groups merged, with its direct kernels in
// a blocked layout, which costs a layout conversion on each side where the neighbours are
// extension operators working on plain NCHW (IGCSecondary, BNReLU): measured on IGC-L100M2,
// the conversions alone took more time than the convolutions. Here each (image, group) task
// sweeps output rows; the inner loops run along a row, vectorised by the compiler (an
// AVX-512 build of the same loops is chosen at run time where the CPU has it).
#include <algorithm>
#include <vector>

#include <immintrin.h>
#include <omp.h>

#include "gm_common.h"
#ifdef GM_WITH_CUDA
#include "gm_cuda.h"
#endif

using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;

namespace {

const char* kOp = "GroupConv";

// Kernel, stride and pad elements up to this keep the output extents (and every product of
// sizes) far from overflow.
constexpr int64_t kMaxExtent = 65536;

struct Param {
  int64_t num_filter, num_group;
  std::vector<int64_t> kernel, stride, pad;

  bool parse(const gm::Attrs& attrs) {
    gm::AttrReader r(attrs, kOp);
    return r.get_int("num_filter", &num_filter, true, 0, 1, INT32_MAX) &&
           r.get_int("num_group", &num_group, false, 1, 1, INT32_MAX) &&
           r.get_tuple("kernel", &kernel, 2, true, {}, 1, kMaxExtent) &&
           r.get_tuple("stride", &stride, 2, false, {1, 1}, 1, kMaxExtent) &&
           r.get_tuple("pad", &pad, 2, false, {0, 0}, 0, kMaxExtent) && r.finish();
  }
};

// Sizes of one call.
struct Geo {
  int64_t N, C, H, W, F, G, Cg, Og, OH, OW, kh, kw, sh, sw, ph, pw;
  int64_t in_plane() const { return H * W; }
  int64_t out_plane() const { return OH * OW; }
};

// Output extent of one axis, or -1 when the (padded) input is shorter than the kernel.
int64_t out_extent(int64_t in, int64_t k, int64_t s, int64_t p) {
  return in + 2 * p < k ? -1 : (in + 2 * p - k) / s + 1;
}

// The weight shape and the output shape the arguments give for `data`'s shape; false with a
// message naming what does not fit.
bool geometry(const Param& p, const std::vector<int64_t>& data, Geo* g) {
  if (data.size() != 4) {
    MX_ERROR_MSG << kOp << ": input 'data' must be 4-d (N, C, H, W), got shape "
                 << gm::shape_str(data);
    return false;
  }
  g->N = data[0], g->C = data[1], g->H = data[2], g->W = data[3];
  g->F = p.num_filter, g->G = p.num_group;
  if (g->C % g->G != 0) {
    MX_ERROR_MSG << kOp << ": channels (axis 1) of 'data' = " << g->C
                 << " not divisible by argument 'num_group' = " << g->G;
    return false;
  }
  if (g->F % g->G != 0) {
    MX_ERROR_MSG << kOp << ": argument 'num_filter' = " << g->F
                 << " not divisible by argument 'num_group' = " << g->G;
    return false;
  }
  g->Cg = g->C / g->G, g->Og = g->F / g->G;
  g->kh = p.kernel[0], g->kw = p.kernel[1], g->sh = p.stride[0], g->sw = p.stride[1];
  g->ph = p.pad[0], g->pw = p.pad[1];
  g->OH = out_extent(g->H, g->kh, g->sh, g->ph);
  g->OW = out_extent(g->W, g->kw, g->sw, g->pw);
  if (g->OH < 0 || g->OW < 0) {
    MX_ERROR_MSG << kOp << ": argument 'kernel' = (" << g->kh << ", " << g->kw
                 << ") is larger than the padded input " << g->H + 2 * g->ph << " x "
                 << g->W + 2 * g->pw << " (argument 'pad' = (" << g->ph << ", " << g->pw << "))";
    return false;
  }
  return true;
}

// ---- CPU kernels ---------------------------------------------------------------------------
// One task = one (image, group) for the data passes, one group over all images for the weight
// gradient. kOg (output channels per group) and kSw (column stride) are compile-time where
// they are small (0 = read from Geo), so the inner loops along a row vectorise. The functions
// are always inlined into two entry points, a generic one and one compiled for AVX-512.
#define GM_INLINE inline __attribute__((always_inline))

// Columns ox with 0 <= ox*sw + kx - pw < W: [lo, hi).
GM_INLINE void col_range(const Geo& g, int64_t kx, int64_t* lo, int64_t* hi) {
  const int64_t a = g.pw - kx;  // ox*sw >= a
  *lo = a <= 0 ? 0 : (a + g.sw - 1) / g.sw;
  const int64_t b = g.W - 1 + g.pw - kx;  // ox*sw <= b
  *hi = b < 0 ? 0 : std::min(g.OW, b / g.sw + 1);
  if (*hi < *lo) *hi = *lo;
}

// out (Og planes) = the group's convolution of in (Cg planes) with w (Og x Cg x kh x kw).
template <typename T, int kOg>
GM_INLINE void forward_task(const Geo& g, const T* __restrict in, const T* __restrict w,
                            T* __restrict out) {
  const int64_t Og = kOg ? kOg : g.Og, sw = g.sw, taps = g.kh * g.kw;
  for (int64_t oy = 0; oy < g.OH; ++oy) {
    T* orow = out + oy * g.OW;
    for (int64_t o = 0; o < Og; ++o) std::fill(orow + o * g.out_plane(), orow + o * g.out_plane() + g.OW, T(0));
    for (int64_t c = 0; c < g.Cg; ++c) {
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.sh + ky - g.ph;
        if (iy < 0 || iy >= g.H) continue;
        const T* irow = in + c * g.in_plane() + iy * g.W;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          int64_t lo, hi;
          col_range(g, kx, &lo, &hi);
          const T* src = irow + kx - g.pw;
          const T* wk = w + (c * g.kh + ky) * g.kw + kx;  // + o * Cg * taps
          if (kOg) {
            T wv[kOg ? kOg : 1];
            for (int o = 0; o < kOg; ++o) wv[o] = wk[o * g.Cg * taps];
#pragma GCC ivdep
            for (int64_t ox = lo; ox < hi; ++ox) {
              const T v = src[ox * sw];
              for (int o = 0; o < kOg; ++o) orow[o * g.out_plane() + ox] += wv[o] * v;
            }
          } else {
            for (int64_t o = 0; o < Og; ++o) {
              const T wo = wk[o * g.Cg * taps];
              T* r = orow + o * g.out_plane();
#pragma GCC ivdep
              for (int64_t ox = lo; ox < hi; ++ox) r[ox] += wo * src[ox * sw];
            }
          }
        }
      }
    }
  }
}

// din (Cg planes) = the adjoint: every output pixel's gradient sent back to the inputs it read.
template <typename T, int kOg>
GM_INLINE void data_grad_task(const Geo& g, const T* __restrict dout, const T* __restrict w,
                              T* __restrict din) {
  const int64_t Og = kOg ? kOg : g.Og, sw = g.sw, taps = g.kh * g.kw;
  std::fill(din, din + g.Cg * g.in_plane(), T(0));
  for (int64_t oy = 0; oy < g.OH; ++oy) {
    const T* drow = dout + oy * g.OW;
    for (int64_t c = 0; c < g.Cg; ++c) {
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.sh + ky - g.ph;
        if (iy < 0 || iy >= g.H) continue;
        T* irow = din + c * g.in_plane() + iy * g.W;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          int64_t lo, hi;
          col_range(g, kx, &lo, &hi);
          T* dst = irow + kx - g.pw;
          const T* wk = w + (c * g.kh + ky) * g.kw + kx;
          if (kOg) {
            T wv[kOg ? kOg : 1];
            for (int o = 0; o < kOg; ++o) wv[o] = wk[o * g.Cg * taps];
#pragma GCC ivdep
            for (int64_t ox = lo; ox < hi; ++ox) {
              T s = wv[0] * drow[ox];
              for (int o = 1; o < kOg; ++o) s += wv[o] * drow[o * g.out_plane() + ox];
              dst[ox * sw] += s;
            }
          } else {
            for (int64_t o = 0; o < Og; ++o) {
              const T wo = wk[o * g.Cg * taps];
              const T* r = drow + o * g.out_plane();
#pragma GCC ivdep
              for (int64_t ox = lo; ox < hi; ++ox) dst[ox * sw] += wo * r[ox];
            }
          }
        }
      }
    }
  }
}

// lanes[l] += a[ox] * b[ox*sw] for ox in [lo, hi), in 16 independent partial sums (so the
// compiler vectorises the sum without reassociating it), an 8-wide step for the tail of
// short rows (56 = 3 x 16 + 8), the rest one by one.
template <typename T, int kSw>
GM_INLINE void dot_lanes(const T* __restrict a, const T* __restrict b, int64_t lo, int64_t hi,
                         int64_t sw_rt, T* __restrict lanes) {
  const int64_t sw = kSw ? kSw : sw_rt;
  int64_t ox = lo;
  for (; ox + 16 <= hi; ox += 16)
    for (int l = 0; l < 16; ++l) lanes[l] += a[ox + l] * b[(ox + l) * sw];
  if (ox + 8 <= hi) {
    for (int l = 0; l < 8; ++l) lanes[l] += a[ox + l] * b[(ox + l) * sw];
    ox += 8;
  }
  for (int l = 0; ox < hi; ++ox, ++l) lanes[l] += a[ox] * b[ox * sw];
}

// dw (Og x Cg x kh x kw) of group gi = sum over images and output pixels; per image the
// partial sums (in T) are added to a double total.
template <typename T>
GM_INLINE void weight_grad_task(const Geo& g, int64_t gi, const T* x, const T* dy, T* dw) {
  const int64_t taps = g.kh * g.kw, nw = g.Og * g.Cg * taps;
  std::vector<double> total(nw, 0.0);
  for (int64_t n = 0; n < g.N; ++n) {
    const T* in = x + (n * g.C + gi * g.Cg) * g.in_plane();
    const T* dout = dy + (n * g.F + gi * g.Og) * g.out_plane();
    for (int64_t o = 0; o < g.Og; ++o) {
      for (int64_t c = 0; c < g.Cg; ++c) {
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            int64_t lo, hi;
            col_range(g, kx, &lo, &hi);
            T lanes[16] = {};
            for (int64_t oy = 0; oy < g.OH; ++oy) {
              const int64_t iy = oy * g.sh + ky - g.ph;
              if (iy < 0 || iy >= g.H) continue;
              dot_lanes<T, 0>(dout + o * g.out_plane() + oy * g.OW,
                                in + c * g.in_plane() + iy * g.W + kx - g.pw, lo, hi, g.sw,
                                lanes);
            }
            double s = 0;
            for (int l = 0; l < 16; ++l) s += lanes[l];
            total[((o * g.Cg + c) * g.kh + ky) * g.kw + kx] += s;
          }
        }
      }
    }
  }
  T* dwg = dw + gi * nw;
  for (int64_t i = 0; i < nw; ++i) dwg[i] = static_cast<T>(total[i]);
}

// ---- stride 1: whole planes as flat loops over zero-padded copies ----------------------------
// With stride 1 the input pixel a tap reads lies at the fixed offset ky*Wp + kx from the output
// pixel in a copy of the plane padded to Hp x Wp (Hp = H + 2 ph, Wp = W + 2 pw = OW + kw - 1)
// when the output is computed in rows of Wp (the last kw - 1 columns of each row unused): every
// tap is then one loop over the whole plane, without boundary tests, instead of one short loop
// per row (56 columns: the loop overhead cost more than the arithmetic).
struct Flat {
  int64_t Wp, len, size;  // padded row, output plane in padded rows (OH*Wp), padded plane
  explicit Flat(const Geo& g)
      : Wp(g.W + 2 * g.pw), len(g.OH * (g.W + 2 * g.pw)),
        size((g.H + 2 * g.ph) * (g.W + 2 * g.pw) + g.kw + 32) {}
  // + kw: the reads of the unused columns; + 32: the AVX-512 kernels' last partial block
  // Scratch elements one task needs: Cg padded input planes and Og output planes (+ 32 each
  // for the AVX-512 kernels' last partial block).
  static int64_t scratch(const Geo& g) {
    const Flat f(g);
    return g.Cg * f.size + g.Og * (f.len + 32);
  }
};

// dst (planes x f.size) = the planes of src (H x W each) inside a zero border.
template <typename T>
GM_INLINE void pad_planes(const Geo& g, const Flat& f, const T* src, int64_t planes, T* dst) {
  for (int64_t p = 0; p < planes; ++p) {
    T* d = dst + p * f.size;
    std::fill(d, d + f.size, T(0));
    for (int64_t iy = 0; iy < g.H; ++iy)
      std::copy(src + (p * g.H + iy) * g.W, src + (p * g.H + iy + 1) * g.W,
                d + (iy + g.ph) * f.Wp + g.pw);
  }
}

// dst (planes x f.len) = the output planes of src (OH x OW each) in rows of Wp, zero-filled.
template <typename T>
GM_INLINE void widen_rows(const Geo& g, const Flat& f, const T* src, int64_t planes, T* dst) {
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oy = 0; oy < g.OH; ++oy) {
      T* d = dst + p * f.len + oy * f.Wp;
      std::copy(src + (p * g.OH + oy) * g.OW, src + (p * g.OH + oy + 1) * g.OW, d);
      std::fill(d + g.OW, d + f.Wp, T(0));
    }
}

template <typename T, int kOg>
GM_INLINE void forward_flat(const Geo& g, const T* __restrict in, const T* __restrict w,
                            T* __restrict out, T* __restrict scratch) {
  const Flat f(g);
  const int64_t Og = kOg ? kOg : g.Og, taps = g.kh * g.kw;
  T* __restrict inp = scratch;
  T* __restrict outp = scratch + g.Cg * f.size;
  pad_planes(g, f, in, g.Cg, inp);
  std::fill(outp, outp + Og * f.len, T(0));
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t ky = 0; ky < g.kh; ++ky)
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const T* src = inp + c * f.size + ky * f.Wp + kx;
        const T* wk = w + (c * g.kh + ky) * g.kw + kx;  // + o * Cg * taps
        if (kOg) {
          T wv[kOg ? kOg : 1];
          for (int o = 0; o < kOg; ++o) wv[o] = wk[o * g.Cg * taps];
#pragma GCC ivdep
          for (int64_t i = 0; i < f.len; ++i) {
            const T v = src[i];
            for (int o = 0; o < kOg; ++o) outp[o * f.len + i] += wv[o] * v;
          }
        } else {
          for (int64_t o = 0; o < Og; ++o) {
            const T wo = wk[o * g.Cg * taps];
            T* r = outp + o * f.len;
#pragma GCC ivdep
            for (int64_t i = 0; i < f.len; ++i) r[i] += wo * src[i];
          }
        }
      }
  for (int64_t o = 0; o < Og; ++o)
    for (int64_t oy = 0; oy < g.OH; ++oy)
      std::copy(outp + o * f.len + oy * f.Wp, outp + o * f.len + oy * f.Wp + g.OW,
                out + (o * g.OH + oy) * g.OW);
}

template <typename T, int kOg>
GM_INLINE void data_grad_flat(const Geo& g, const T* __restrict dout, const T* __restrict w,
                              T* __restrict din, T* __restrict scratch) {
  const Flat f(g);
  const int64_t Og = kOg ? kOg : g.Og, taps = g.kh * g.kw;
  T* __restrict dinp = scratch;
  T* __restrict doutp = scratch + g.Cg * f.size;
  widen_rows(g, f, dout, Og, doutp);  // zeros in the unused columns: they send nothing back
  std::fill(dinp, dinp + g.Cg * f.size, T(0));
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t ky = 0; ky < g.kh; ++ky)
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        T* dst = dinp + c * f.size + ky * f.Wp + kx;
        const T* wk = w + (c * g.kh + ky) * g.kw + kx;
        if (kOg) {
          T wv[kOg ? kOg : 1];
          for (int o = 0; o < kOg; ++o) wv[o] = wk[o * g.Cg * taps];
#pragma GCC ivdep
          for (int64_t i = 0; i < f.len; ++i) {
            T s = wv[0] * doutp[i];
            for (int o = 1; o < kOg; ++o) s += wv[o] * doutp[o * f.len + i];
            dst[i] += s;
          }
        } else {
          for (int64_t o = 0; o < Og; ++o) {
            const T wo = wk[o * g.Cg * taps];
            const T* r = doutp + o * f.len;
#pragma GCC ivdep
            for (int64_t i = 0; i < f.len; ++i) dst[i] += wo * r[i];
          }
        }
      }
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t iy = 0; iy < g.H; ++iy) {
      const T* s = dinp + c * f.size + (iy + g.ph) * f.Wp + g.pw;
      std::copy(s, s + g.W, din + (c * g.H + iy) * g.W);
    }
}

// dw of group gi: per image, every weight is one dot product over the padded planes.
template <typename T>
GM_INLINE void weight_grad_flat(const Geo& g, int64_t gi, const T* x, const T* dy, T* dw,
                                T* scratch) {
  const Flat f(g);
  const int64_t taps = g.kh * g.kw, nw = g.Og * g.Cg * taps;
  T* inp = scratch;
  T* doutp = scratch + g.Cg * f.size;
  std::vector<double> total(nw, 0.0);
  for (int64_t n = 0; n < g.N; ++n) {
    pad_planes(g, f, x + (n * g.C + gi * g.Cg) * g.in_plane(), g.Cg, inp);
    widen_rows(g, f, dy + (n * g.F + gi * g.Og) * g.out_plane(), g.Og, doutp);
    for (int64_t o = 0; o < g.Og; ++o)
      for (int64_t c = 0; c < g.Cg; ++c)
        for (int64_t ky = 0; ky < g.kh; ++ky)
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            T lanes[16] = {};
            dot_lanes<T, 1>(doutp + o * f.len, inp + c * f.size + ky * f.Wp + kx, 0, f.len, 1,
                            lanes);
            double s = 0;
            for (int l = 0; l < 16; ++l) s += lanes[l];
            total[((o * g.Cg + c) * g.kh + ky) * g.kw + kx] += s;
          }
  }
  T* dwg = dw + gi * nw;
  for (int64_t i = 0; i < nw; ++i) dwg[i] = static_cast<T>(total[i]);
}

// Stride 1 in both axes: the flat kernels; otherwise the row kernels.
GM_INLINE bool flat_path(const Geo& g) { return g.sh == 1 && g.sw == 1; }

// One (image, group) of the data passes, with the output channels per group as a
// compile-time constant where small (1, 2 or 4).
template <typename T>
GM_INLINE void forward_one(const Geo& g, const T* in, const T* w, T* out, T* scratch) {
  if (flat_path(g)) {
    switch (g.Og) {
      case 1: return forward_flat<T, 1>(g, in, w, out, scratch);
      case 2: return forward_flat<T, 2>(g, in, w, out, scratch);
      case 4: return forward_flat<T, 4>(g, in, w, out, scratch);
      default: return forward_flat<T, 0>(g, in, w, out, scratch);
    }
  }
  switch (g.Og) {
    case 1: return forward_task<T, 1>(g, in, w, out);
    case 2: return forward_task<T, 2>(g, in, w, out);
    case 4: return forward_task<T, 4>(g, in, w, out);
    default: return forward_task<T, 0>(g, in, w, out);
  }
}

template <typename T>
GM_INLINE void data_grad_one(const Geo& g, const T* dout, const T* w, T* din, T* scratch) {
  if (flat_path(g)) {
    switch (g.Og) {
      case 1: return data_grad_flat<T, 1>(g, dout, w, din, scratch);
      case 2: return data_grad_flat<T, 2>(g, dout, w, din, scratch);
      case 4: return data_grad_flat<T, 4>(g, dout, w, din, scratch);
      default: return data_grad_flat<T, 0>(g, dout, w, din, scratch);
    }
  }
  switch (g.Og) {
    case 1: return data_grad_task<T, 1>(g, dout, w, din);
    case 2: return data_grad_task<T, 2>(g, dout, w, din);
    case 4: return data_grad_task<T, 4>(g, dout, w, din);
    default: return data_grad_task<T, 0>(g, dout, w, din);
  }
}

// Task t of a pass (kind 0 forward, 1 data gradient: t = image * G + group; kind 2 weight
// gradient: t = group), with the instruction set of the entry point it is inlined into.
// `scratch`: Flat::scratch(g) elements of the calling thread.
template <typename T>
GM_INLINE void run_task(int kind, const Geo& g, int64_t t, const T* a, const T* w, T* b,
                        T* scratch) {
  if (kind == 2) {  // a = x, w = dy, b = dw
    if (flat_path(g)) weight_grad_flat<T>(g, t, a, w, b, scratch);
    else weight_grad_task<T>(g, t, a, w, b);
    return;
  }
  const int64_t n = t / g.G, gi = t % g.G;
  const T* wg = w + gi * g.Og * g.Cg * g.kh * g.kw;
  if (kind == 0)
    forward_one(g, a + (n * g.C + gi * g.Cg) * g.in_plane(), wg,
                b + (n * g.F + gi * g.Og) * g.out_plane(), scratch);
  else
    data_grad_one(g, a + (n * g.F + gi * g.Og) * g.out_plane(), wg,
                  b + (n * g.C + gi * g.Cg) * g.in_plane(), scratch);
}

template <typename T>
void task_generic(int kind, const Geo& g, int64_t t, const T* a, const T* w, T* b, T* scratch) {
  run_task(kind, g, t, a, w, b, scratch);
}
template <typename T>
GM_TARGET_AVX512 void task_avx512(int kind, const Geo& g, int64_t t, const T* a, const T* w,
                                  T* b, T* scratch) {
  run_task(kind, g, t, a, w, b, scratch);
}

// Runs every task of `kind` on MXNet's OpenMP threads, each with its own scratch.
template <typename T>
void run_cpu(int kind, const Geo& g, const T* a, const T* w, T* b) {
  auto task = gm::cpu_has_avx512() ? &task_avx512<T> : &task_generic<T>;
  const int64_t tasks = kind == 2 ? g.G : g.N * g.G;
  const int threads = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(tasks, omp_get_max_threads())));
  const int64_t per = flat_path(g) ? Flat::scratch(g) : 0;
  std::vector<T> scratch(per * threads);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t t = 0; t < tasks; ++t)
    task(kind, g, t, a, w, b, scratch.data() + per * omp_get_thread_num());
}

// ---- float32 on AVX-512, stride 1: register-blocked flat kernels ---------------------------
// The same flat formulation, with the sums of a block of outputs held in registers over all
// taps (instead of one pass over the output planes per tap), and the backward pass fused per
// group: per image, the data gradient gathers from a zero-bordered copy of the output
// gradient (every input pixel reads the output pixels that read it) and the weight gradient
// takes its dot products from the same copies, so each tensor crosses memory once.
struct FlatBack {
  int64_t front, plane;  // zeros before an output-gradient plane, one bordered plane
  explicit FlatBack(const Geo& g, const Flat& f)
      : front((g.kh - 1) * f.Wp + g.kw - 1),
        plane(front + (g.H + 2 * g.ph) * f.Wp + 32) {}
  // Scratch of one group task: Cg padded input planes, Og bordered output-gradient planes and
  // Cg padded input-gradient planes.
  static int64_t scratch(const Geo& g) {
    const Flat f(g);
    const FlatBack b(g, f);
    return 2 * g.Cg * f.size + g.Og * b.plane;
  }
};

// outp (Og planes of f.len) = the forward sums, 32 outputs at a time in registers.
template <int kOg>
GM_TARGET_AVX512 void forward_avx512(const Geo& g, const Flat& f, const float* inp,
                                     const float* w, float* outp) {
  const int64_t taps = g.kh * g.kw, nt = g.Cg * taps;
  std::vector<int64_t> off(nt);
  std::vector<float> wt(nt * kOg);
  for (int64_t c = 0; c < g.Cg; ++c)
    for (int64_t t = 0; t < taps; ++t) {
      off[c * taps + t] = c * f.size + (t / g.kw) * f.Wp + t % g.kw;
      for (int o = 0; o < kOg; ++o) wt[(c * taps + t) * kOg + o] = w[(o * g.Cg + c) * taps + t];
    }
  for (int64_t i = 0; i < f.len; i += 32) {  // outp has room for a last partial block
    __m512 a[kOg][2];
    for (int o = 0; o < kOg; ++o) a[o][0] = a[o][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < nt; ++k) {
      const float* s = inp + off[k] + i;
      const __m512 v0 = _mm512_loadu_ps(s), v1 = _mm512_loadu_ps(s + 16);
      for (int o = 0; o < kOg; ++o) {
        const __m512 wv = _mm512_set1_ps(wt[k * kOg + o]);
        a[o][0] = _mm512_fmadd_ps(wv, v0, a[o][0]);
        a[o][1] = _mm512_fmadd_ps(wv, v1, a[o][1]);
      }
    }
    for (int o = 0; o < kOg; ++o) {
      _mm512_storeu_ps(outp + o * (f.len + 32) + i, a[o][0]);
      _mm512_storeu_ps(outp + o * (f.len + 32) + i + 16, a[o][1]);
    }
  }
}

// One image of a group's backward pass. inp: the Cg input planes padded (Flat); dob: the Og
// output-gradient planes bordered (FlatBack: b.front zeros, then rows of Wp with zeros in the
// unused columns, then zeros); dinp: Cg padded planes receiving the input gradient (rows
// [ph, ph + H) written); acc: Og x Cg x taps weight-gradient sums, added to.
template <int kCg, int kOg>
GM_TARGET_AVX512 void backward_image_avx512(const Geo& g, const Flat& f, const FlatBack& b,
                                            const float* inp, const float* dob,
                                            const float* w, float* dinp, double* acc) {
  const int64_t taps = g.kh * g.kw;
  // data gradient: dinp[c][j] = sum_{o, t} w[o][c][t] dob[o][j - off_t], 32 at a time
  {
    const int64_t nt = kOg * taps;
    std::vector<int64_t> off(nt);
    std::vector<float> wt(nt * kCg);
    for (int o = 0; o < kOg; ++o)
      for (int64_t t = 0; t < taps; ++t) {
        off[o * taps + t] = o * b.plane + b.front - (t / g.kw) * f.Wp - t % g.kw;
        for (int c = 0; c < kCg; ++c) wt[(o * taps + t) * kCg + c] = w[(o * kCg + c) * taps + t];
      }
    const int64_t j0 = g.ph * f.Wp, j1 = (g.ph + g.H) * f.Wp;
    for (int64_t j = j0; j < j1; j += 32) {  // dinp and dob have room for a partial block
      __m512 a[kCg][2];
      for (int c = 0; c < kCg; ++c) a[c][0] = a[c][1] = _mm512_setzero_ps();
      for (int64_t k = 0; k < nt; ++k) {
        const float* s = dob + off[k] + j;
        const __m512 v0 = _mm512_loadu_ps(s), v1 = _mm512_loadu_ps(s + 16);
        for (int c = 0; c < kCg; ++c) {
          const __m512 wv = _mm512_set1_ps(wt[k * kCg + c]);
          a[c][0] = _mm512_fmadd_ps(wv, v0, a[c][0]);
          a[c][1] = _mm512_fmadd_ps(wv, v1, a[c][1]);
        }
      }
      for (int c = 0; c < kCg; ++c) {
        _mm512_storeu_ps(dinp + c * f.size + j, a[c][0]);
        _mm512_storeu_ps(dinp + c * f.size + j + 16, a[c][1]);
      }
    }
  }
  // weight gradient: acc[o][c][t] += sum_i dob[o][front + i] inp[c][i + off_t], i < len (the
  // unused columns of dob are zeros, so are its 32 elements past len)
  for (int c = 0; c < kCg; ++c) {
    for (int64_t t0 = 0; t0 < taps; t0 += 9) {  // at most 9 taps x kOg (<= 2) sums in registers
      const int nt = static_cast<int>(std::min<int64_t>(9, taps - t0));
      int64_t off[9];
      for (int t = 0; t < nt; ++t) off[t] = c * f.size + ((t0 + t) / g.kw) * f.Wp + (t0 + t) % g.kw;
      __m512 a[kOg][9];
      for (int o = 0; o < kOg; ++o)
        for (int t = 0; t < 9; ++t) a[o][t] = _mm512_setzero_ps();
      for (int64_t i = 0; i < f.len; i += 16) {
        __m512 d[kOg];
        for (int o = 0; o < kOg; ++o) d[o] = _mm512_loadu_ps(dob + o * b.plane + b.front + i);
        for (int t = 0; t < nt; ++t) {
          const __m512 s = _mm512_loadu_ps(inp + off[t] + i);
          for (int o = 0; o < kOg; ++o) a[o][t] = _mm512_fmadd_ps(d[o], s, a[o][t]);
        }
      }
      alignas(64) float lanes[16];
      for (int o = 0; o < kOg; ++o)
        for (int t = 0; t < nt; ++t) {
          _mm512_store_ps(lanes, a[o][t]);
          double sum = 0;
          for (int l = 0; l < 16; ++l) sum += lanes[l];
          acc[(o * kCg + c) * taps + t0 + t] += sum;
        }
    }
  }
}

// Forward of one (image, group): pad, the blocked sums, the output rows out of the padded ones.
template <int kOg>
GM_TARGET_AVX512 void forward_one_avx512(const Geo& g, const float* in, const float* w,
                                         float* out, float* scratch) {
  const Flat f(g);
  float* inp = scratch;
  float* outp = scratch + g.Cg * f.size;
  pad_planes(g, f, in, g.Cg, inp);
  forward_avx512<kOg>(g, f, inp, w, outp);
  for (int o = 0; o < kOg; ++o)
    for (int64_t oy = 0; oy < g.OH; ++oy)
      std::copy(outp + o * (f.len + 32) + oy * f.Wp, outp + o * (f.len + 32) + oy * f.Wp + g.OW,
                out + (o * g.OH + oy) * g.OW);
}

// The whole backward pass of group gi (both gradients), image after image.
template <int kCg, int kOg>
GM_TARGET_AVX512 void backward_group_avx512(const Geo& g, int64_t gi, const float* x,
                                            const float* dy, const float* w, float* dx,
                                            float* dw, float* scratch) {
  const Flat f(g);
  const FlatBack b(g, f);
  const int64_t taps = g.kh * g.kw, nw = kOg * kCg * taps;
  float* inp = scratch;
  float* dinp = inp + kCg * f.size;
  float* dob = dinp + kCg * f.size;
  std::fill(dob, dob + kOg * b.plane, 0.0f);  // the rows below overwrite only the data
  std::vector<double> acc(nw, 0.0);
  const float* wg = w + gi * nw;
  for (int64_t n = 0; n < g.N; ++n) {
    pad_planes(g, f, x + (n * g.C + gi * kCg) * g.in_plane(), kCg, inp);
    const float* d = dy + (n * g.F + gi * kOg) * g.out_plane();
    for (int o = 0; o < kOg; ++o)
      for (int64_t oy = 0; oy < g.OH; ++oy)
        std::copy(d + (o * g.OH + oy) * g.OW, d + (o * g.OH + oy + 1) * g.OW,
                  dob + o * b.plane + b.front + oy * f.Wp);
    backward_image_avx512<kCg, kOg>(g, f, b, inp, dob, wg, dinp, acc.data());
    float* dxn = dx + (n * g.C + gi * kCg) * g.in_plane();
    for (int c = 0; c < kCg; ++c)
      for (int64_t iy = 0; iy < g.H; ++iy) {
        const float* s = dinp + c * f.size + (iy + g.ph) * f.Wp + g.pw;
        std::copy(s, s + g.W, dxn + (c * g.H + iy) * g.W);
      }
  }
  for (int64_t i = 0; i < nw; ++i) dw[gi * nw + i] = static_cast<float>(acc[i]);
}

// Whether the AVX-512 kernels take this float32 call: stride 1, 1 or 2 input channels and
// 1 or 2 output channels per group for the backward pass, 1, 2 or 4 outputs for the forward.
bool avx512_forward(const Geo& g) {
  return gm::cpu_has_avx512() && flat_path(g) && (g.Og == 1 || g.Og == 2 || g.Og == 4);
}
bool avx512_backward(const Geo& g) {
  return gm::cpu_has_avx512() && flat_path(g) && (g.Cg == 1 || g.Cg == 2) &&
         (g.Og == 1 || g.Og == 2);
}

void forward_cpu_avx512(const Geo& g, const float* x, const float* w, float* y) {
  const int64_t tasks = g.N * g.G, per = Flat::scratch(g);
  const int threads = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(tasks, omp_get_max_threads())));
  std::vector<float> scratch(per * threads);
  auto one = g.Og == 1 ? &forward_one_avx512<1> : g.Og == 2 ? &forward_one_avx512<2>
                                                             : &forward_one_avx512<4>;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t n = t / g.G, gi = t % g.G;
    one(g, x + (n * g.C + gi * g.Cg) * g.in_plane(), w + gi * g.Og * g.Cg * g.kh * g.kw,
        y + (n * g.F + gi * g.Og) * g.out_plane(), scratch.data() + per * omp_get_thread_num());
  }
}

void backward_cpu_avx512(const Geo& g, const float* x, const float* dy, const float* w,
                         float* dx, float* dw) {
  const int64_t per = FlatBack::scratch(g);
  const int threads = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(g.G, omp_get_max_threads())));
  std::vector<float> scratch(per * threads);
  auto group = g.Cg == 1 ? (g.Og == 1 ? &backward_group_avx512<1, 1> : &backward_group_avx512<1, 2>)
                         : (g.Og == 1 ? &backward_group_avx512<2, 1> : &backward_group_avx512<2, 2>);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t gi = 0; gi < g.G; ++gi)
    group(g, gi, x, dy, w, dx, dw, scratch.data() + per * omp_get_thread_num());
}

#ifdef GM_WITH_CUDA
gm_gc_geom gpu_geom(const Geo& g) {
  return gm_gc_geom{g.N, g.C, g.H, g.W, g.F, g.G, g.OH, g.OW, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw};
}
#endif

// One pass: kind 0 out = conv(a = data), 1 b = grad_data from a = grad_out, 2 b = grad_weight
// from a = data and w = grad_out. Sizes are checked by the caller.
gm::MXReturnValue pass(int kind, const Geo& g, MXTensor& a, MXTensor& w, MXTensor& b,
                       const OpResource& res) {
  const bool f64 = a.dtype == mxnet::ext::kFloat64;
  if (gm::on_gpu(a)) {
#ifdef GM_WITH_CUDA
    const gm_gc_geom gg = gpu_geom(g);
    return gm::gpu_status(kOp, gm_gc_pass_gpu(f64 ? 8 : 4, kind, &gg, a.data_ptr, w.data_ptr,
                                              b.data_ptr, res.get_cuda_stream()));
#else
    return gm::gpu_status(kOp, -1);
#endif
  }
  if (f64)
    run_cpu(kind, g, a.data<double>(), w.data<double>(), b.data<double>());
  else if (kind == 0 && avx512_forward(g))
    forward_cpu_avx512(g, a.data<float>(), w.data<float>(), b.data<float>());
  else
    run_cpu(kind, g, a.data<float>(), w.data<float>(), b.data<float>());
  return gm::MX_SUCCESS;
}

// ---- lib_api hooks -----------------------------------------------------------------------
const char* kInNames[] = {"data", "weight"};

gm::MXReturnValue parseAttrs(const gm::Attrs& attrs, int* num_in, int* num_out) {
  Param p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  *num_in = 2;
  *num_out = 1;
  return gm::MX_SUCCESS;
}

gm::MXReturnValue inferType(const gm::Attrs& attrs, std::vector<int>* in, std::vector<int>* out) {
  return gm::same_float_type(kOp, kInNames, 2, in, out);
}

gm::MXReturnValue inferShape(const gm::Attrs& attrs, std::vector<std::vector<unsigned>>* in,
                             std::vector<std::vector<unsigned>>* out) {
  Param p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "shape inference", in->size(), 2, out->size(), 1))
    return gm::MX_FAIL;
  const gm::Shape& s = (*in)[0];
  if (s.size() != 4) {
    MX_ERROR_MSG << kOp << ": input 'data' must be 4-d (N, C, H, W), got "
                 << (s.empty() ? "ndim 0 or an unknown shape" : "shape " + gm::shape_str(gm::want_of(s)));
    return gm::MX_FAIL;
  }
  if (p.num_filter % p.num_group != 0) {
    MX_ERROR_MSG << kOp << ": argument 'num_filter' = " << p.num_filter
                 << " not divisible by argument 'num_group' = " << p.num_group;
    return gm::MX_FAIL;
  }
  int64_t cg = -1;
  if (gm::dim_known(s[1])) {
    if (s[1] % p.num_group != 0) {
      MX_ERROR_MSG << kOp << ": channels (axis 1) of 'data' = " << s[1]
                   << " not divisible by argument 'num_group' = " << p.num_group;
      return gm::MX_FAIL;
    }
    cg = s[1] / p.num_group;
  }
  const gm::Want w{p.num_filter, cg, p.kernel[0], p.kernel[1]};
  if (!gm::settle_shape(kOp, "input", "weight", &(*in)[1], w,
                        "(num_filter, channels of 'data' / num_group, kernel)"))
    return gm::MX_FAIL;
  gm::Want o{gm::dim_known(s[0]) ? static_cast<int64_t>(s[0]) : -1, p.num_filter, -1, -1};
  for (int i = 0; i < 2; ++i) {
    if (!gm::dim_known(s[2 + i])) continue;
    o[2 + i] = out_extent(s[2 + i], p.kernel[i], p.stride[i], p.pad[i]);
    if (o[2 + i] < 0) {
      MX_ERROR_MSG << kOp << ": argument 'kernel' = (" << p.kernel[0] << ", " << p.kernel[1]
                   << ") is larger than the padded input (shape of 'data' "
                   << gm::shape_str(gm::want_of(s)) << ", argument 'pad' = (" << p.pad[0]
                   << ", " << p.pad[1] << "))";
      return gm::MX_FAIL;
    }
  }
  return gm::settle_shape(kOp, "output", "out", &(*out)[0], o, "the convolution's output")
             ? gm::MX_SUCCESS
             : gm::MX_FAIL;
}

// The tensors of a pass against the geometry of `data`: weight shape, dtypes.
bool check_tensors(const Param& p, const MXTensor& data, const MXTensor& weight, Geo* g) {
  const std::vector<MXTensor> in{data, weight};
  if (!gm::check_float_inputs(kOp, kInNames, in, 2)) return false;
  if (!geometry(p, data.shape, g)) return false;
  const std::vector<int64_t> want{g->F, g->Cg, g->kh, g->kw};
  if (weight.shape != want) {
    MX_ERROR_MSG << kOp << ": input 'weight' has shape " << gm::shape_str(weight.shape)
                 << ", expected " << gm::shape_str(want)
                 << " = (num_filter, channels of 'data' / num_group, kernel)";
    return false;
  }
  return true;
}

// inputs: [data, weight]; outputs: [out]
gm::MXReturnValue forward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                          std::vector<MXTensor>* outputs, const OpResource& res) {
  Param p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "forward", inputs->size(), 2, outputs->size(), 1))
    return gm::MX_FAIL;
  MXTensor &x = (*inputs)[0], &w = (*inputs)[1], &y = (*outputs)[0];
  Geo g;
  if (!check_tensors(p, x, w, &g)) return gm::MX_FAIL;
  if (!gm::check_output(kOp, "out", y, {g.N, g.F, g.OH, g.OW}, x.dtype)) return gm::MX_FAIL;
  if (y.size() == 0) return gm::MX_SUCCESS;
  return pass(0, g, x, w, y, res);
}

// inputs: [grad_out, data, weight, out]; outputs: [grad_data, grad_weight]
// Extension operators are not told `req` (they always overwrite); the Gluon layer passes
// graph inputs through a stock identity (gluon_models/nn/basic.py).
gm::MXReturnValue backward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                           std::vector<MXTensor>* outputs, const OpResource& res) {
  Param p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "backward", inputs->size(), 4, outputs->size(), 2))
    return gm::MX_FAIL;
  MXTensor &dy = (*inputs)[0], &x = (*inputs)[1], &w = (*inputs)[2];
  MXTensor &dx = (*outputs)[0], &dw = (*outputs)[1];
  Geo g;
  if (!check_tensors(p, x, w, &g)) return gm::MX_FAIL;
  const std::vector<int64_t> out_shape{g.N, g.F, g.OH, g.OW};
  if (dy.shape != out_shape || dy.dtype != x.dtype) {
    MX_ERROR_MSG << kOp << ": 'grad_out' has shape " << gm::shape_str(dy.shape) << " and dtype "
                 << gm::dtype_name(dy.dtype) << ", expected " << gm::shape_str(out_shape)
                 << " and " << gm::dtype_name(x.dtype);
    return gm::MX_FAIL;
  }
  if (!gm::check_output(kOp, "grad_data", dx, x.shape, x.dtype) ||
      !gm::check_output(kOp, "grad_weight", dw, w.shape, w.dtype))
    return gm::MX_FAIL;
  if (!gm::on_gpu(x) && x.dtype == mxnet::ext::kFloat32 && dx.size() > 0 && dw.size() > 0 &&
      avx512_backward(g)) {  // both gradients in one pass over the tensors
    backward_cpu_avx512(g, x.data<float>(), dy.data<float>(), w.data<float>(),
                        dx.data<float>(), dw.data<float>());
    return gm::MX_SUCCESS;
  }
  if (dx.size() > 0 && pass(1, g, dy, w, dx, res) != gm::MX_SUCCESS) return gm::MX_FAIL;
  if (dw.size() > 0 && pass(2, g, x, dy, dw, res) != gm::MX_SUCCESS) return gm::MX_FAIL;
  return gm::MX_SUCCESS;
}

}  // namespace

REGISTER_OP(GroupConv)
    .setParseAttrs(parseAttrs)
    .setInferType(inferType)
    .setInferShape(inferShape)
    .GM_PASSES(forward, backward);
