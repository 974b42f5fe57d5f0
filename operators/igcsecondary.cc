// IGCSecondary: the secondary group convolution of an interleaved group convolution block
// (IGCNets, Zhang et al., ICCV 2017) together with the two channel permutations around it,
//   Reorder(C / L) o Conv1x1(C -> C, C / L groups) o Reorder(L),
// computed in place of those three operators without moving any channel.
//
// With Q = C / L, Reorder(L) sends channel b*Q + j to position j*L + b, so secondary group j
// reads the channels {b*Q + j : b = 0..L-1} (the j-th channel of every primary partition), and
// Reorder(Q) sends its outputs back to the same channels. For image n and group j that is one
// matrix product over rows Q*inner apart in memory:
//   out[n, b'*Q + j, :] = sum_b W[j*L + b', b] data[n, b*Q + j, :]     (W: the (C, L, 1, 1)
//                                                                        weight of the 1x1 conv)
// i.e. Y_nj = W_j X_nj with leading dimension Q*inner, no copy. The backward:
//   dX_nj = W_j^T dY_nj,   dW_j = sum_n dY_nj X_nj^T.
// Results are those of the three operators up to the order of float additions.
//
//   IGCSecondary(data, weight, primary)
//     data    (N, C, ...)      C divisible by `primary`
//     weight  (C, primary, 1, 1)
//     out     (N, C, ...)
#include <algorithm>
#include <vector>

#include <omp.h>

#include "gm_blas.h"
#include "gm_common.h"
#ifdef GM_WITH_CUDA
#include "gm_cuda.h"
#endif

using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;

namespace {

const char* kOp = "IGCSecondary";

struct Param {
  int64_t primary;

  bool parse(const gm::Attrs& attrs) {
    gm::AttrReader r(attrs, kOp);
    return r.get_int("primary", &primary, true, 0, 1, INT32_MAX) && r.finish();
  }
};

// Sizes of one call, checked against the tensors.
struct Dims {
  int64_t N, C, L, Q, inner;
};

bool dims_of(const MXTensor& data, const MXTensor& weight, const Param& p, const char* what,
             Dims* d) {
  if (data.shape.size() < 2) {
    MX_ERROR_MSG << kOp << ": input '" << what << "' must have ndim >= 2 (channels on axis 1), "
                 << "got shape " << gm::shape_str(data.shape);
    return false;
  }
  if (data.dtype != mxnet::ext::kFloat32 && data.dtype != mxnet::ext::kFloat64) {
    MX_ERROR_MSG << kOp << ": input '" << what << "' has unsupported dtype "
                 << gm::dtype_name(data.dtype) << " (supported: float32, float64)";
    return false;
  }
  d->N = data.shape[0];
  d->C = data.shape[1];
  d->L = p.primary;
  if (d->C % d->L != 0) {
    MX_ERROR_MSG << kOp << ": channels (axis 1) of '" << what << "' = " << d->C
                 << " not divisible by argument 'primary' = " << d->L;
    return false;
  }
  d->Q = d->C / d->L;
  d->inner = 1;
  for (size_t i = 2; i < data.shape.size(); ++i) d->inner *= data.shape[i];
  const std::vector<int64_t> want{d->C, d->L, 1, 1};
  if (weight.shape != want) {
    MX_ERROR_MSG << kOp << ": input 'weight' has shape " << gm::shape_str(weight.shape)
                 << ", expected " << gm::shape_str(want) << " = (channels, primary, 1, 1)";
    return false;
  }
  if (weight.dtype != data.dtype) {
    MX_ERROR_MSG << kOp << ": input 'weight' has dtype " << gm::dtype_name(weight.dtype)
                 << ", expected " << gm::dtype_name(data.dtype) << " (that of '" << what << "')";
    return false;
  }
  // CBLAS takes int sizes: the leading dimension of the strided operands is Q * inner.
  if (d->Q * d->inner > INT32_MAX || d->L > INT32_MAX) {
    MX_ERROR_MSG << kOp << ": channels x spatial size " << d->C * d->inner
                 << " is too large (the strided products need Q * inner < 2^31)";
    return false;
  }
  return true;
}

// ---- CPU: one single-threaded GEMM per (image, group), spread over MXNet's OpenMP threads ----
template <typename T>
void forward_cpu(const Dims& d, const T* x, const T* w, T* y, bool transpose_w) {
  const int64_t ld = d.Q * d.inner, tasks = d.N * d.Q;
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(
      tasks, omp_get_max_threads())));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t n = t / d.Q, j = t % d.Q;
    const int64_t off = n * d.C * d.inner + j * d.inner;
    gm::blas_gemm(transpose_w, false, static_cast<int>(d.L), static_cast<int>(d.inner),
                  static_cast<int>(d.L), T(1), w + j * d.L * d.L, static_cast<int>(d.L), x + off,
                  static_cast<int>(ld), T(0), y + off, static_cast<int>(ld));
  }
}

// dW_j = sum_n dY_nj X_nj^T. Groups are independent: with at least as many groups as threads
// each thread owns whole groups (single-threaded GEMMs accumulating over the images); with
// fewer, the groups run one after the other and each product is split over the threads.
template <typename T>
void weight_grad_cpu(const Dims& d, const T* x, const T* dy, T* dw) {
  const int64_t ld = d.Q * d.inner;
  auto group = [&](int64_t j) {
    T* dwj = dw + j * d.L * d.L;
    for (int64_t n = 0; n < d.N; ++n) {
      const int64_t off = n * d.C * d.inner + j * d.inner;
      gm::gemm(false, true, d.L, d.L, d.inner, T(1), dy + off, ld, x + off, ld,
               n == 0 ? T(0) : T(1), dwj, d.L);
    }
    if (d.N == 0) std::fill(dwj, dwj + d.L * d.L, T(0));
  };
  if (d.Q >= omp_get_max_threads()) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t j = 0; j < d.Q; ++j) group(j);  // gm::gemm runs single-threaded in here
  } else {
    for (int64_t j = 0; j < d.Q; ++j) group(j);
  }
}

#ifdef GM_WITH_CUDA
// GPU: the same products with the tiled GEMM of fmconv_kernels.cu on MXNet's stream.
template <typename T>
int forward_gpu(const Dims& d, const T* x, const T* w, T* y, bool transpose_w, void* stream) {
  const int64_t ld = d.Q * d.inner;
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t j = 0; j < d.Q; ++j) {
      const int64_t off = n * d.C * d.inner + j * d.inner;
      int err = gm_fm_gemm_gpu(sizeof(T), transpose_w, false, d.L, d.inner, d.L, 1.0,
                               w + j * d.L * d.L, d.L, x + off, ld, 0.0, y + off, ld, stream);
      if (err) return err;
    }
  return 0;
}

template <typename T>
int weight_grad_gpu(const Dims& d, const T* x, const T* dy, T* dw, void* stream) {
  const int64_t ld = d.Q * d.inner;
  for (int64_t j = 0; j < d.Q; ++j) {
    T* dwj = dw + j * d.L * d.L;
    if (d.N == 0) {
      // an empty batch: dW = 0 (beta 0 with K = 0 writes zeros)
      int err = gm_fm_gemm_gpu(sizeof(T), false, true, d.L, d.L, 0, 1.0, dy, ld, x, ld, 0.0,
                               dwj, d.L, stream);
      if (err) return err;
    }
    for (int64_t n = 0; n < d.N; ++n) {
      const int64_t off = n * d.C * d.inner + j * d.inner;
      int err = gm_fm_gemm_gpu(sizeof(T), false, true, d.L, d.L, d.inner, 1.0, dy + off, ld,
                               x + off, ld, n == 0 ? 0.0 : 1.0, dwj, d.L, stream);
      if (err) return err;
    }
  }
  return 0;
}
#endif

// out = op(data) for the forward (transpose_w = false) or grad_data = op^T(grad_out).
gm::MXReturnValue apply(MXTensor& src, MXTensor& weight, MXTensor& dst,
                        const char* what, const char* dst_name, const Param& p, bool transpose_w,
                        const OpResource& res) {
  Dims d;
  if (!dims_of(src, weight, p, what, &d)) return gm::MX_FAIL;
  if (!gm::check_output(kOp, dst_name, dst, src.shape, src.dtype)) return gm::MX_FAIL;
  if (src.size() == 0) return gm::MX_SUCCESS;
  const bool f64 = src.dtype == mxnet::ext::kFloat64;
  if (src.ctx.dev_type == "gpu") {
#ifdef GM_WITH_CUDA
    int err = f64 ? forward_gpu(d, src.data<double>(), weight.data<double>(), dst.data<double>(),
                                transpose_w, res.get_cuda_stream())
                  : forward_gpu(d, src.data<float>(), weight.data<float>(), dst.data<float>(),
                                transpose_w, res.get_cuda_stream());
    return gm::gpu_status(kOp, err);
#else
    return gm::gpu_status(kOp, -1);
#endif
  }
  if (f64)
    forward_cpu(d, src.data<double>(), weight.data<double>(), dst.data<double>(), transpose_w);
  else
    forward_cpu(d, src.data<float>(), weight.data<float>(), dst.data<float>(), transpose_w);
  return gm::MX_SUCCESS;
}

// ---- lib_api hooks -----------------------------------------------------------------------
gm::MXReturnValue parseAttrs(const gm::Attrs& attrs, int* num_in, int* num_out) {
  Param p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  *num_in = 2;
  *num_out = 1;
  return gm::MX_SUCCESS;
}

const char* kInNames[] = {"data", "weight"};

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
  if (s.size() < 2) {
    MX_ERROR_MSG << kOp << ": input 'data' must have ndim >= 2 (channels on axis 1), got "
                 << (s.empty() ? "ndim 0 or an unknown shape" : "ndim 1");
    return gm::MX_FAIL;
  }
  if (gm::dim_known(s[1]) && s[1] % p.primary != 0) {
    MX_ERROR_MSG << kOp << ": channels (axis 1) of 'data' = " << s[1]
                 << " not divisible by argument 'primary' = " << p.primary;
    return gm::MX_FAIL;
  }
  const gm::Want w{gm::dim_known(s[1]) ? static_cast<int64_t>(s[1]) : -1, p.primary, 1, 1};
  if (!gm::settle_shape(kOp, "input", "weight", &(*in)[1], w, "(channels of 'data', primary, 1, 1)"))
    return gm::MX_FAIL;
  return gm::settle_shape(kOp, "output", "out", &(*out)[0], gm::want_of(s), "the shape of 'data'")
             ? gm::MX_SUCCESS
             : gm::MX_FAIL;
}

// inputs: [data, weight]; outputs: [out]
gm::MXReturnValue forward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                          std::vector<MXTensor>* outputs, const OpResource& res) {
  Param p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "forward", inputs->size(), 2, outputs->size(), 1))
    return gm::MX_FAIL;
  return apply((*inputs)[0], (*inputs)[1], (*outputs)[0], "data", "out", p, false, res);
}

// inputs: [grad_out, data, weight, out]; outputs: [grad_data, grad_weight]
// Extension operators are not told `req` (they always overwrite); the Gluon layer passes
// graph inputs through a stock identity (gluon_models/nn/igc.py).
gm::MXReturnValue backward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                           std::vector<MXTensor>* outputs, const OpResource& res) {
  Param p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "backward", inputs->size(), 4, outputs->size(), 2))
    return gm::MX_FAIL;
  MXTensor &dy = (*inputs)[0], &x = (*inputs)[1], &w = (*inputs)[2];
  MXTensor &dx = (*outputs)[0], &dw = (*outputs)[1];
  Dims d;
  if (!dims_of(x, w, p, "data", &d)) return gm::MX_FAIL;
  if (dy.shape != x.shape || dy.dtype != x.dtype) {
    MX_ERROR_MSG << kOp << ": 'grad_out' has shape " << gm::shape_str(dy.shape) << " and dtype "
                 << gm::dtype_name(dy.dtype) << ", expected those of 'data'";
    return gm::MX_FAIL;
  }
  if (!gm::check_output(kOp, "grad_weight", dw, w.shape, w.dtype)) return gm::MX_FAIL;
  if (apply(dy, w, dx, "grad_out", "grad_data", p, true, res) != gm::MX_SUCCESS)
    return gm::MX_FAIL;
  if (w.size() == 0) return gm::MX_SUCCESS;
  const bool f64 = x.dtype == mxnet::ext::kFloat64;
  if (x.ctx.dev_type == "gpu") {
#ifdef GM_WITH_CUDA
    int err = f64 ? weight_grad_gpu(d, x.data<double>(), dy.data<double>(), dw.data<double>(),
                                    res.get_cuda_stream())
                  : weight_grad_gpu(d, x.data<float>(), dy.data<float>(), dw.data<float>(),
                                    res.get_cuda_stream());
    return gm::gpu_status(kOp, err);
#else
    return gm::gpu_status(kOp, -1);
#endif
  }
  if (d.inner == 0) {  // no pixels: an empty sum
    if (f64) std::fill(dw.data<double>(), dw.data<double>() + w.size(), 0.0);
    else std::fill(dw.data<float>(), dw.data<float>() + w.size(), 0.0f);
    return gm::MX_SUCCESS;
  }
  if (f64)
    weight_grad_cpu(d, x.data<double>(), dy.data<double>(), dw.data<double>());
  else
    weight_grad_cpu(d, x.data<float>(), dy.data<float>(), dw.data<float>());
  return gm::MX_SUCCESS;
}

}  // namespace

REGISTER_OP(IGCSecondary)
    .setParseAttrs(parseAttrs)
    .setInferType(inferType)
    .setInferShape(inferShape)
    .GM_PASSES(forward, backward);
