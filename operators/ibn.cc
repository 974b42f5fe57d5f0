// IBN: instance normalisation on one group of channels, batch normalisation on the rest, in one
// operator (IBN-Net, Pan, Luo, Shi, Tang, ECCV 2018, arXiv 1807.09441; the authors' code
// github.com/XingangPan/IBN-Net and the MXNet port github.com/bruinxiong/IBN-Net.mxnet).
//
//   IBN(data, in_gamma, in_beta, bn_gamma, bn_beta, train_flag, moving_mean, moving_var,
//       in_channels, in_first=True, eps=1e-5, momentum=0.9) -> (out, mean, var)
//
// data is (N, C, spatial...) with ndim >= 3, S = the product of the spatial extents. The IN group
// is the first `in_channels` channels (in_first=True, the IBN-a layer of ResNet/ResNeXt) or the
// last `in_channels` (in_first=False: BN first, as the authors' DenseNet-IBN); the BN group is the
// other Cb = C - in_channels channels. Each channel of the IN group is normalised per sample over
// S with its own statistics, each of the BN group over (N, S); both use the biased variance and
// y = gamma * (x - mean) / sqrt(var + eps) + beta with their own gamma/beta (`in_gamma`,
// `in_beta` of shape (in_channels,), `bn_gamma`, `bn_beta` of shape (Cb,)).
//
// Train/inference mode reaches the operator as data (an extension operator is never told
// `is_train`): `train_flag` (1,) is > 0.5 in training, else the BN group is normalised with
// `moving_mean` / `moving_var` (Cb,). Those two are mutable inputs (auxiliary states, as
// BatchNorm's); like MXNet 1.9.1's BatchNorm they are updated in the *backward* pass of a
// training step, run <- momentum * run + (1 - momentum) * batch (biased batch variance), and a
// forward pass alone leaves them untouched.
//
// Outputs `mean` and `var` (N * in_channels + Cb,) are the statistics the forward used: per
// (n, c) of the IN group (index n * in_channels + c), then per channel of the BN group (batch
// statistics in training, the running ones in inference). The backward reads them; they carry
// no gradient of their own.
//
// Statistics are one pass over the data (sums shifted by the first element, in double), the
// normalisation and affine are one fused pass; the backward computes, per statistic, the sums of
// dy and dy * (x - mean) in one pass and the data gradient in a second.
#include <algorithm>
#include <cmath>
#include <vector>

#include "gm_common.h"
#ifdef GM_WITH_CUDA
#include "gm_cuda.h"
// Launchers in ibn_kernels.cu (same contracts as the CPU functions below; elem 4 or 8).
extern "C" {
int gm_ibn_forward_gpu(int elem, const void* x, const void* in_gamma, const void* in_beta,
                       const void* bn_gamma, const void* bn_beta, const void* flag,
                       const void* run_mean, const void* run_var, void* y, void* mean, void* var,
                       int64_t N, int64_t C, int64_t S, int64_t Ci, int64_t i0, int64_t b0,
                       double eps, void* stream);
int gm_ibn_backward_gpu(int elem, const void* dy, const void* x, const void* in_gamma,
                        const void* bn_gamma, const void* flag, void* run_mean, void* run_var,
                        const void* mean, const void* var, void* dx, void* d_in_gamma,
                        void* d_in_beta, void* d_bn_gamma, void* d_bn_beta, void* work,
                        int64_t N, int64_t C, int64_t S, int64_t Ci, int64_t i0, int64_t b0,
                        double eps, double momentum, void* stream);
}
#endif

using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;

namespace {

const char* kOp = "IBN";
const char* kInputs[] = {"data",     "in_gamma", "in_beta",     "bn_gamma",
                         "bn_beta",  "train_flag", "moving_mean", "moving_var"};
constexpr int kNumIn = 8;
constexpr int kNumOut = 3;

struct IBNParam {
  int64_t in_channels;
  bool in_first;
  double eps;
  double momentum;

  bool parse(const gm::Attrs& attrs) {
    gm::AttrReader r(attrs, kOp);
    return r.get_int("in_channels", &in_channels, true, 0, 1, INT32_MAX) &&
           r.get_bool("in_first", &in_first, true) &&
           r.get_float("eps", &eps, false, 1e-5, 1e-300, 1e300) &&
           r.get_float("momentum", &momentum, false, 0.9, 0.0, 1.0) && r.finish();
  }
};

// Layout of one call: data (N, C, S); IN channels [i0, i0 + Ci), BN channels [b0, b0 + Cb).
// Statistic k < N*Ci covers the plane (n = k / Ci, i0 + k % Ci); k = N*Ci + c covers the N
// planes of channel b0 + c.
struct Layout {
  int64_t N, C, S, Ci, Cb, i0, b0;
  int64_t stats() const { return N * Ci + Cb; }
};

std::string ndim_text(const gm::Shape& s) {
  return s.empty() ? std::string("ndim 0 or an unknown shape") : "ndim " + std::to_string(s.size());
}

// ---- pure CPU kernels -------------------------------------------------------------------------
template <typename T>
struct Cpu {
  const Layout& L;

  // Planes of statistic k: first plane offset, plane stride (between samples), count.
  void planes(int64_t k, int64_t* off, int64_t* stride, int64_t* count, int64_t* ch) const {
    const int64_t nci = L.N * L.Ci;
    if (k < nci) {
      const int64_t n = k / L.Ci, c = k % L.Ci;
      *off = (n * L.C + L.i0 + c) * L.S;
      *stride = 0;
      *count = 1;
      *ch = c;
    } else {
      const int64_t c = k - nci;
      *off = (L.b0 + c) * L.S;
      *stride = L.C * L.S;
      *count = L.N;
      *ch = c;
    }
  }

  // Statistics in BN-first order (the heavy BN statistics are handed out first).
  static int64_t order(const Layout& l, int64_t i) {
    return i < l.Cb ? l.N * l.Ci + i : i - l.Cb;
  }

  void forward(const T* x, const T* ig, const T* ib, const T* bg, const T* bb, bool train,
               const T* rm, const T* rv, T* y, T* mean, T* var, double eps) const {
    const int64_t K = L.stats(), nci = L.N * L.Ci;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < K; ++i) {
      const int64_t k = order(L, i);
      int64_t off, stride, count, c;
      planes(k, &off, &stride, &count, &c);
      double mu, v;
      if (k >= nci && !train) {
        mu = static_cast<double>(rm[c]);
        v = static_cast<double>(rv[c]);
      } else {
        const double M = static_cast<double>(count * L.S);
        const double shift = M > 0 ? static_cast<double>(x[off]) : 0.0;
        double s1 = 0, s2 = 0;
        for (int64_t p = 0; p < count; ++p) {
          const T* xp = x + off + p * stride;
          for (int64_t s = 0; s < L.S; ++s) {
            const double d = static_cast<double>(xp[s]) - shift;
            s1 += d;
            s2 += d * d;
          }
        }
        mu = M > 0 ? shift + s1 / M : 0.0;
        v = M > 0 ? std::max(0.0, (s2 - s1 * s1 / M) / M) : 0.0;
      }
      mean[k] = static_cast<T>(mu);
      var[k] = static_cast<T>(v);
      const double g = k < nci ? ig[c] : bg[c], b = k < nci ? ib[c] : bb[c];
      const double a = g / std::sqrt(v + eps);
      const T ta = static_cast<T>(a), tb = static_cast<T>(b - mu * a);
      for (int64_t p = 0; p < count; ++p) {
        const T* xp = x + off + p * stride;
        T* yp = y + off + p * stride;
        for (int64_t s = 0; s < L.S; ++s) yp[s] = xp[s] * ta + tb;
      }
    }
  }

  // dg, db: per statistic (K each), reduced into the parameter gradients by the caller.
  void backward(const T* dy, const T* x, const T* ig, const T* bg, bool train, const T* mean,
                const T* var, T* dx, double* dg, double* db, double eps) const {
    const int64_t K = L.stats(), nci = L.N * L.Ci;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < K; ++i) {
      const int64_t k = order(L, i);
      int64_t off, stride, count, c;
      planes(k, &off, &stride, &count, &c);
      const double mu = mean[k], inv = 1.0 / std::sqrt(static_cast<double>(var[k]) + eps);
      double sdy = 0, sdyx = 0;
      for (int64_t p = 0; p < count; ++p) {
        const T* xp = x + off + p * stride;
        const T* gp = dy + off + p * stride;
        for (int64_t s = 0; s < L.S; ++s) {
          const double g = gp[s];
          sdy += g;
          sdyx += g * (static_cast<double>(xp[s]) - mu);
        }
      }
      dg[k] = sdyx * inv;
      db[k] = sdy;
      const double gamma = k < nci ? ig[c] : bg[c];
      const bool batch_stats = k < nci || train;
      const double M = static_cast<double>(count * L.S);
      // dx = c1 dy + c2 x + c3
      const double c1 = gamma * inv;
      const double c2 = batch_stats && M > 0 ? -gamma * inv * inv * inv * sdyx / M : 0.0;
      const double c3 = batch_stats && M > 0 ? -gamma * inv * sdy / M - c2 * mu : 0.0;
      const T t1 = static_cast<T>(c1), t2 = static_cast<T>(c2), t3 = static_cast<T>(c3);
      for (int64_t p = 0; p < count; ++p) {
        const T* xp = x + off + p * stride;
        const T* gp = dy + off + p * stride;
        T* dp = dx + off + p * stride;
        for (int64_t s = 0; s < L.S; ++s) dp[s] = gp[s] * t1 + xp[s] * t2 + t3;
      }
    }
  }
};

// ---- checks shared by the hooks and the passes ------------------------------------------------
bool layout_of(const IBNParam& p, const std::vector<int64_t>& d, Layout* L) {
  if (d.size() < 3) {
    MX_ERROR_MSG << kOp << ": input 'data' must have ndim >= 3 (N, C, spatial...), got ndim "
                 << d.size();
    return false;
  }
  L->N = d[0];
  L->C = d[1];
  L->S = 1;
  for (size_t i = 2; i < d.size(); ++i) L->S *= d[i];
  if (L->C <= p.in_channels) {
    MX_ERROR_MSG << kOp << ": argument 'in_channels' = " << p.in_channels
                 << " must be less than the channels (axis 1) of 'data' = " << L->C
                 << " (both groups need at least one channel)";
    return false;
  }
  L->Ci = p.in_channels;
  L->Cb = L->C - L->Ci;
  L->i0 = p.in_first ? 0 : L->Cb;
  L->b0 = p.in_first ? L->Ci : 0;
  return true;
}

bool check_vector(const MXTensor& t, const char* name, int64_t n, const char* meaning) {
  if (t.shape.size() != 1 || t.shape[0] != n) {
    MX_ERROR_MSG << kOp << ": input '" << name << "' has shape " << gm::shape_str(t.shape)
                 << ", expected (" << n << ",) = " << meaning;
    return false;
  }
  return true;
}

// The forward inputs (kNumIn of them: the hooks checked the count).
bool check_inputs(const IBNParam& p, const std::vector<MXTensor>& in, Layout* L) {
  if (!gm::check_float_inputs(kOp, kInputs, in, kNumIn)) return false;
  if (!layout_of(p, in[0].shape, L)) return false;
  return check_vector(in[1], "in_gamma", L->Ci, "(in_channels,)") &&
         check_vector(in[2], "in_beta", L->Ci, "(in_channels,)") &&
         check_vector(in[3], "bn_gamma", L->Cb, "(C - in_channels,)") &&
         check_vector(in[4], "bn_beta", L->Cb, "(C - in_channels,)") &&
         check_vector(in[5], "train_flag", 1, "(1,)") &&
         check_vector(in[6], "moving_mean", L->Cb, "(C - in_channels,)") &&
         check_vector(in[7], "moving_var", L->Cb, "(C - in_channels,)");
}

// ---- lib_api hooks ----------------------------------------------------------------------------
gm::MXReturnValue parseAttrs(const gm::Attrs& attrs, int* num_in, int* num_out) {
  IBNParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  *num_in = kNumIn;
  *num_out = kNumOut;
  return gm::MX_SUCCESS;
}

// moving_mean and moving_var are auxiliary states (updated in place by the backward pass).
gm::MXReturnValue mutateInputs(const gm::Attrs& attrs, std::vector<int>* indices) {
  indices->push_back(6);
  indices->push_back(7);
  return gm::MX_SUCCESS;
}

gm::MXReturnValue inferType(const gm::Attrs& attrs, std::vector<int>* in, std::vector<int>* out) {
  IBNParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  return gm::same_float_type(kOp, kInputs, kNumIn, in, out);
}

// Fills the parameter shapes from the data shape and in_channels (Gluon's deferred
// initialisation relies on it), checks the given ones, sets out = data's shape and the
// statistics (N * in_channels + Cb,). Unknown dimensions stay unknown, every slot gets its ndim.
gm::MXReturnValue inferShape(const gm::Attrs& attrs, std::vector<std::vector<unsigned>>* in,
                             std::vector<std::vector<unsigned>>* out) {
  IBNParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "shape inference", in->size(), kNumIn, out->size(), kNumOut))
    return gm::MX_FAIL;
  gm::Shape& data = (*in)[0];
  if (data.size() < 3) {
    MX_ERROR_MSG << kOp << ": input 'data' must have ndim >= 3 (N, C, spatial...), got "
                 << ndim_text(data);
    return gm::MX_FAIL;
  }
  // C from a known BN-group vector when data's C is not known yet.
  if (!gm::dim_known(data[1])) {
    for (int i : {3, 4, 6, 7}) {
      const gm::Shape& v = (*in)[i];
      if (v.size() == 1 && gm::dim_known(v[0])) {
        data[1] = static_cast<unsigned>(v[0] + p.in_channels);
        break;
      }
    }
  }
  const gm::Want d = gm::want_of(data);
  if (d[1] >= 0 && d[1] <= p.in_channels) {
    MX_ERROR_MSG << kOp << ": argument 'in_channels' = " << p.in_channels
                 << " must be less than the channels (axis 1) of 'data' = " << d[1]
                 << " (both groups need at least one channel)";
    return gm::MX_FAIL;
  }
  const int64_t cb = d[1] >= 0 ? d[1] - p.in_channels : -1;
  int64_t stats = -1;
  if (d[0] >= 0 && cb >= 0) stats = d[0] * p.in_channels + cb;
  const char* cbm = "(C - in_channels,)";
  const bool ok =
      gm::settle_shape(kOp, "input", "in_gamma", &(*in)[1], {p.in_channels}, "(in_channels,)") &&
      gm::settle_shape(kOp, "input", "in_beta", &(*in)[2], {p.in_channels}, "(in_channels,)") &&
      gm::settle_shape(kOp, "input", "bn_gamma", &(*in)[3], {cb}, cbm) &&
      gm::settle_shape(kOp, "input", "bn_beta", &(*in)[4], {cb}, cbm) &&
      gm::settle_shape(kOp, "input", "train_flag", &(*in)[5], {1}, "(1,)") &&
      gm::settle_shape(kOp, "input", "moving_mean", &(*in)[6], {cb}, cbm) &&
      gm::settle_shape(kOp, "input", "moving_var", &(*in)[7], {cb}, cbm) &&
      gm::settle_shape(kOp, "output", "out", &(*out)[0], d, "the shape of 'data'") &&
      gm::settle_shape(kOp, "output", "mean", &(*out)[1], {stats}, "(N * in_channels + C - in_channels,)") &&
      gm::settle_shape(kOp, "output", "var", &(*out)[2], {stats}, "(N * in_channels + C - in_channels,)");
  return ok ? gm::MX_SUCCESS : gm::MX_FAIL;
}


template <typename T>
void run_forward(const Layout& L, const IBNParam& p, std::vector<MXTensor>& in,
                 std::vector<MXTensor>& out) {
  Cpu<T>{L}.forward(in[0].data<T>(), in[1].data<T>(), in[2].data<T>(), in[3].data<T>(),
                    in[4].data<T>(), gm::train_flag_set<T>(in[5]), in[6].data<T>(), in[7].data<T>(),
                    out[0].data<T>(), out[1].data<T>(), out[2].data<T>(), p.eps);
}

// inputs: [data, in_gamma, in_beta, bn_gamma, bn_beta, train_flag, moving_mean, moving_var]
// outputs: [out, mean, var]
gm::MXReturnValue forward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                          std::vector<MXTensor>* outputs, const OpResource& res) {
  IBNParam p;
  Layout L;
  if (!p.parse(attrs) ||
      !gm::check_counts(kOp, "forward", inputs->size(), kNumIn, outputs->size(), kNumOut) ||
      !check_inputs(p, *inputs, &L))
    return gm::MX_FAIL;
  const int dt = (*inputs)[0].dtype;
  if (!gm::check_output(kOp, "out", (*outputs)[0], (*inputs)[0].shape, dt) ||
      !gm::check_output(kOp, "mean", (*outputs)[1], {L.stats()}, dt) ||
      !gm::check_output(kOp, "var", (*outputs)[2], {L.stats()}, dt))
    return gm::MX_FAIL;
  std::vector<MXTensor>& in = *inputs;
  std::vector<MXTensor>& out = *outputs;
  if (gm::on_gpu(in[0])) {
#ifdef GM_WITH_CUDA
    const int err = gm_ibn_forward_gpu(
        dt == mxnet::ext::kFloat64 ? 8 : 4, in[0].data_ptr, in[1].data_ptr, in[2].data_ptr,
        in[3].data_ptr, in[4].data_ptr, in[5].data_ptr, in[6].data_ptr, in[7].data_ptr,
        out[0].data_ptr, out[1].data_ptr, out[2].data_ptr, L.N, L.C, L.S, L.Ci, L.i0, L.b0,
        p.eps, res.get_cuda_stream());
    return gm::gpu_status(kOp, err);
#else
    return gm::gpu_status(kOp, -1);
#endif
  }
  if (dt == mxnet::ext::kFloat64) {
    run_forward<double>(L, p, in, out);
  } else {
    run_forward<float>(L, p, in, out);
  }
  return gm::MX_SUCCESS;
}

template <typename T>
void run_backward(const Layout& L, const IBNParam& p, std::vector<MXTensor>& in,
                  std::vector<MXTensor>& out) {
  // in: [g_out, g_mean, g_var, data, in_gamma, in_beta, bn_gamma, bn_beta, flag, rm, rv,
  //      out, mean, var]
  const bool train = gm::train_flag_set<T>(in[8]);
  const T* mean = in[12].data<T>();
  const T* var = in[13].data<T>();
  const int64_t K = L.stats(), nci = L.N * L.Ci;
  std::vector<double> dg(K), db(K);
  Cpu<T>{L}.backward(in[0].data<T>(), in[3].data<T>(), in[4].data<T>(), in[6].data<T>(), train,
                     mean, var, out[0].data<T>(), dg.data(), db.data(), p.eps);
  T* dig = out[1].data<T>();
  T* dib = out[2].data<T>();
  T* dbg = out[3].data<T>();
  T* dbb = out[4].data<T>();
  for (int64_t c = 0; c < L.Ci; ++c) {
    double sg = 0, sb = 0;
    for (int64_t n = 0; n < L.N; ++n) {
      sg += dg[n * L.Ci + c];
      sb += db[n * L.Ci + c];
    }
    dig[c] = static_cast<T>(sg);
    dib[c] = static_cast<T>(sb);
  }
  for (int64_t c = 0; c < L.Cb; ++c) {
    dbg[c] = static_cast<T>(dg[nci + c]);
    dbb[c] = static_cast<T>(db[nci + c]);
  }
  // The running statistics follow MXNet's BatchNorm: updated by a training backward pass.
  if (train && L.N * L.S > 0) {
    T* rm = in[9].data<T>();
    T* rv = in[10].data<T>();
    const double m = p.momentum;
    for (int64_t c = 0; c < L.Cb; ++c) {
      rm[c] = static_cast<T>(m * rm[c] + (1 - m) * static_cast<double>(mean[nci + c]));
      rv[c] = static_cast<T>(m * rv[c] + (1 - m) * static_cast<double>(var[nci + c]));
    }
  }
}

// inputs: [grad_out, grad_mean, grad_var, data, in_gamma, in_beta, bn_gamma, bn_beta,
//          train_flag, moving_mean, moving_var, out, mean, var]
// outputs: one gradient per forward input; train_flag's gets zeros, the running statistics'
// slots are left alone. Extension operators are not told `req`: every gradient
// is overwritten; the Gluon layer feeds graph inputs through stock identities so that
// grad_req='add' still accumulates (platform.md section 2). `mean`/`var` carry no gradient.
gm::MXReturnValue backward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                           std::vector<MXTensor>* outputs, const OpResource& res) {
  IBNParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "backward", inputs->size(), 2 * kNumOut + kNumIn, outputs->size(),
                        kNumIn))
    return gm::MX_FAIL;
  std::vector<MXTensor>& in = *inputs;
  std::vector<MXTensor>& out = *outputs;
  std::vector<MXTensor> fwd_in(in.begin() + kNumOut, in.begin() + kNumOut + kNumIn);
  Layout L;
  if (!check_inputs(p, fwd_in, &L)) return gm::MX_FAIL;
  const int dt = fwd_in[0].dtype;
  const MXTensor& gout = in[0];
  if (gout.dtype != dt || gout.shape != fwd_in[0].shape) {
    MX_ERROR_MSG << kOp << ": the output gradient has shape " << gm::shape_str(gout.shape)
                 << " and dtype " << gm::dtype_name(gout.dtype) << ", expected those of 'data'";
    return gm::MX_FAIL;
  }
  for (int i : {12, 13}) {
    if (in[i].dtype != dt || in[i].shape != std::vector<int64_t>{L.stats()}) {
      MX_ERROR_MSG << kOp << ": the saved statistics '" << (i == 12 ? "mean" : "var")
                   << "' have shape " << gm::shape_str(in[i].shape) << ", expected ("
                   << L.stats() << ",)";
      return gm::MX_FAIL;
    }
  }
  for (int i = 0; i < 5; ++i) {
    const std::string name = std::string("grad_") + kInputs[i];
    if (!gm::check_output(kOp, name.c_str(), out[i], fwd_in[i].shape, dt)) return gm::MX_FAIL;
  }
  // train_flag has no gradient: its slot gets zeros where allocated as expected. The slots of
  // the auxiliary states are never written: MXNet requests no gradient for them and may hand
  // memory that another array of the graph uses.
  std::vector<int> zero_slots;
  if (out[5].data_ptr != nullptr && out[5].shape == fwd_in[5].shape && out[5].dtype == dt)
    zero_slots.push_back(5);
  if (gm::on_gpu(fwd_in[0])) {
#ifdef GM_WITH_CUDA
    const int elem = dt == mxnet::ext::kFloat64 ? 8 : 4;
    // per-statistic partial sums (dg, db) in double
    void* work = res.alloc_gpu(static_cast<int>(2 * L.stats() * sizeof(double) + 16));
    if (!work) {
      MX_ERROR_MSG << kOp << ": cannot allocate GPU workspace";
      return gm::MX_FAIL;
    }
    int err = gm_ibn_backward_gpu(
        elem, in[0].data_ptr, fwd_in[0].data_ptr, fwd_in[1].data_ptr, fwd_in[3].data_ptr,
        fwd_in[5].data_ptr, fwd_in[6].data_ptr, fwd_in[7].data_ptr, in[12].data_ptr,
        in[13].data_ptr, out[0].data_ptr, out[1].data_ptr, out[2].data_ptr, out[3].data_ptr,
        out[4].data_ptr, work, L.N, L.C, L.S, L.Ci, L.i0, L.b0, p.eps, p.momentum,
        res.get_cuda_stream());
    for (int i : zero_slots)
      if (err == 0)
        err = gm_fm_zero_gpu(out[i].data_ptr, static_cast<int64_t>(out[i].size()) * elem,
                             res.get_cuda_stream());
    return gm::gpu_status(kOp, err);
#else
    return gm::gpu_status(kOp, -1);
#endif
  }
  if (dt == mxnet::ext::kFloat64) {
    run_backward<double>(L, p, in, out);
    for (int i : zero_slots) std::fill_n(out[i].data<double>(), out[i].size(), 0.0);
  } else {
    run_backward<float>(L, p, in, out);
    for (int i : zero_slots) std::fill_n(out[i].data<float>(), out[i].size(), 0.0f);
  }
  return gm::MX_SUCCESS;
}

}  // namespace

REGISTER_OP(IBN)
    .setParseAttrs(parseAttrs)
    .setInferType(inferType)
    .setInferShape(inferShape)
    .setInferSType(gm::all_dense)
    .setMutateInputs(mutateInputs)
    .GM_PASSES(forward, backward);
