// BNReLU: batch normalisation of a plain (N, C, spatial...) tensor, optionally followed by ReLU,
// in one operator.
//
//   BNReLU(data, gamma, beta, train_flag, moving_mean, moving_var[, residual], relu=True,
//          residual=False, eps=1e-5, momentum=0.9) -> (out, mean, var)
//
// out = max(0, gamma * (data - mean) / sqrt(var + eps) + beta [+ residual]) per channel (axis
// 1), without the max when relu=False: MXNet's BatchNorm (fix_gamma=False, biased batch
// variance, the same running-statistics rule), the residual input (shaped as data; only with
// residual=True) added, then Activation(relu): the tail relu(bn(x) + shortcut) of a residual
// block in one pass. Train/inference mode, the auxiliary
// running statistics (updated by the training backward pass, run <- momentum * run +
// (1 - momentum) * batch) and the outputs mean/var (C,) (statistics the forward used) follow the
// IBN operator (ibn.cc), whose GPU kernels this operator shares (its BN group with no IN group).
//
// Why it exists: MXNet 1.9.1 hands an extension operator's output (IGCSecondary's) to the next
// BatchNorm in plain NCHW, where oneDNN runs its reference-like "ncsp" kernels (39 ms forward,
// 30 ms backward for 16x200x56x56 on one core) and the ReLU behind it is another pass each way.
// Here the statistics are one pass (shifted sums in 16 float lanes, flushed to double every 4096
// elements; all double for float64), normalisation + ReLU one pass; the backward masks dy by
// out > 0 on the fly (no masked copy), sums in one pass and writes the data gradient in a second.
#include <algorithm>
#include <cmath>
#include <vector>

#include "gm_common.h"
#ifdef GM_WITH_CUDA
#include "gm_cuda.h"
// ibn_kernels.cu: the IBN launchers (used with no IN group) and the residual / ReLU helpers.
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
int gm_add_relu_gpu(int elem, void* y, const void* r, int relu, int64_t n, void* stream);
int gm_relu_mask_gpu(int elem, const void* dy, const void* y, void* out, int64_t n, void* stream);
}
#endif

using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;

namespace {

const char* kOp = "BNReLU";
const char* kInputs[] = {"data",        "gamma",      "beta",    "train_flag",
                         "moving_mean", "moving_var", "residual"};
constexpr int kNumIn = 6;  // without the optional residual (input 6)
constexpr int kNumOut = 3;
constexpr int kLanes = 16;
constexpr int64_t kFlush = 4096;  // elements summed in T lanes before they go to double

struct BNReLUParam {
  bool relu;
  bool residual;
  double eps;
  double momentum;

  int num_in() const { return kNumIn + (residual ? 1 : 0); }

  bool parse(const gm::Attrs& attrs) {
    gm::AttrReader r(attrs, kOp);
    if (!(r.get_bool("relu", &relu, true) && r.get_bool("residual", &residual, false) &&
          r.get_float("eps", &eps, false, 1e-5, 1e-300, 1e300) &&
          r.get_float("momentum", &momentum, false, 0.9, 0.0, 1.0) && r.finish()))
      return false;
    momentum = static_cast<float>(momentum);  // MXNet's BatchNorm keeps its momentum in float
    return true;
  }
};

struct Layout {
  int64_t N, C, S;
};

// ---- pure CPU kernels -------------------------------------------------------------------------
// Adds sum(x - shift) and sum((x - shift)^2) over x[0, n) to *s1, *s2.
template <typename T>
void shifted_sums(const T* x, int64_t n, T shift, double* s1, double* s2) {
  for (int64_t b = 0; b < n; b += kFlush) {
    const int64_t e = std::min(n, b + kFlush);
    T a1[kLanes] = {}, a2[kLanes] = {};
    int64_t i = b;
    for (; i + kLanes <= e; i += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const T d = x[i + l] - shift;
        a1[l] += d;
        a2[l] += d * d;
      }
    double t1 = 0, t2 = 0;
    for (; i < e; ++i) {
      const double d = static_cast<double>(x[i]) - shift;
      t1 += d;
      t2 += d * d;
    }
    for (int l = 0; l < kLanes; ++l) {
      t1 += a1[l];
      t2 += a2[l];
    }
    *s1 += t1;
    *s2 += t2;
  }
}

// Adds sum(g) and sum(g * (x - mu)) to *sg, *sgx, where g = dy masked by y > 0 if relu.
template <typename T, bool kRelu>
void grad_sums(const T* dy, const T* y, const T* x, int64_t n, T mu, double* sg, double* sgx) {
  constexpr int64_t kBlock = 256;  // g is selected into a block first: unconditional loads and
  T g[kBlock];                     // a select vectorize; a select inside the lane sums does not
  for (int64_t b = 0; b < n; b += kFlush) {
    const int64_t e = std::min(n, b + kFlush);
    T a1[kLanes] = {}, a2[kLanes] = {};
    double t1 = 0, t2 = 0;
    for (int64_t i0 = b; i0 < e; i0 += kBlock) {
      const int64_t m = std::min(kBlock, e - i0);
      for (int64_t j = 0; j < m; ++j) {
        const T d = dy[i0 + j], v = y[i0 + j];
        g[j] = !kRelu || v > T(0) ? d : T(0);
      }
      const T* xb = x + i0;
      int64_t j = 0;
      for (; j + kLanes <= m; j += kLanes)
        for (int l = 0; l < kLanes; ++l) {
          a1[l] += g[j + l];
          a2[l] += g[j + l] * (xb[j + l] - mu);
        }
      for (; j < m; ++j) {
        t1 += g[j];
        t2 += g[j] * (static_cast<double>(xb[j]) - mu);
      }
    }
    for (int l = 0; l < kLanes; ++l) {
      t1 += a1[l];
      t2 += a2[l];
    }
    *sg += t1;
    *sgx += t2;
  }
}

template <typename T>
struct Cpu {
  const Layout& L;

  const T* plane(const T* p, int64_t n, int64_t c) const { return p + (n * L.C + c) * L.S; }
  T* plane(T* p, int64_t n, int64_t c) const { return p + (n * L.C + c) * L.S; }

  // res: the residual input, or null
  // Planes of fewer elements than this are finished in a second, contiguous sweep over the
  // tensor after every channel's coefficients are known (a per-channel sweep would touch
  // 16 short strided pieces per channel and array: 2.5x slower backward at 7 x 7); longer ones
  // right after their channel's sums, while its planes are still in cache.
  static constexpr int64_t kShortPlane = 512;

  // Runs f(n, c) for every plane: per channel inside the channel loop (long planes) or in
  // memory order afterwards (short planes); coef(c) computes channel c's coefficients first.
  template <typename Coef, typename Plane>
  void sweep(Coef coef, Plane f) const {
    const bool per_channel = L.S >= kShortPlane;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t c = 0; c < L.C; ++c) {
      coef(c);
      if (per_channel)
        for (int64_t n = 0; n < L.N; ++n) f(n, c);
    }
    if (!per_channel) {
      const int64_t planes = L.N * L.C;
#pragma omp parallel for schedule(static)
      for (int64_t k = 0; k < planes; ++k) f(k / L.C, k % L.C);
    }
  }

  void forward(const T* x, const T* gamma, const T* beta, bool train, const T* rm, const T* rv,
               const T* res, bool relu, T* y, T* mean, T* var, double eps) const {
    const double M = static_cast<double>(L.N * L.S);
    std::vector<T> ta(L.C), tb(L.C);
    auto coef = [&](int64_t c) {
      double mu, v;
      if (!train) {
        mu = static_cast<double>(rm[c]);
        v = static_cast<double>(rv[c]);
      } else if (M > 0) {
        const T shift = plane(x, 0, c)[0];
        double s1 = 0, s2 = 0;
        for (int64_t n = 0; n < L.N; ++n) shifted_sums(plane(x, n, c), L.S, shift, &s1, &s2);
        mu = static_cast<double>(shift) + s1 / M;
        v = std::max(0.0, (s2 - s1 * s1 / M) / M);
      } else {
        mu = v = 0.0;
      }
      mean[c] = static_cast<T>(mu);
      var[c] = static_cast<T>(v);
      const double a = static_cast<double>(gamma[c]) / std::sqrt(v + eps);
      ta[c] = static_cast<T>(a);
      tb[c] = static_cast<T>(static_cast<double>(beta[c]) - mu * a);
    };
    auto apply = [&](int64_t n, int64_t c) {
      const T a = ta[c], b = tb[c];
      const T* xp = plane(x, n, c);
      T* yp = plane(y, n, c);
      if (res) {
        const T* rp = plane(res, n, c);
        if (relu) {
          for (int64_t s = 0; s < L.S; ++s) yp[s] = std::max(xp[s] * a + b + rp[s], T(0));
        } else {
          for (int64_t s = 0; s < L.S; ++s) yp[s] = xp[s] * a + b + rp[s];
        }
      } else if (relu) {
        for (int64_t s = 0; s < L.S; ++s) yp[s] = std::max(xp[s] * a + b, T(0));
      } else {
        for (int64_t s = 0; s < L.S; ++s) yp[s] = xp[s] * a + b;
      }
    };
    sweep(coef, apply);
  }

  // dgamma, dbeta per channel (double), dx; the data gradient of inference-mode statistics is
  // gamma / sqrt(var + eps) * dy alone. dres: the residual's gradient (the masked dy), or null.
  template <bool kRelu>
  void backward(const T* dy, const T* x, const T* y, const T* gamma, bool train, const T* mean,
                const T* var, T* dx, T* dres, double* dg, double* db, double eps) const {
    const double M = static_cast<double>(L.N * L.S);
    std::vector<T> t1(L.C), t2(L.C), t3(L.C);
    auto coef = [&](int64_t c) {
      const double mu = mean[c], inv = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
      double sg = 0, sgx = 0;
      for (int64_t n = 0; n < L.N; ++n)
        grad_sums<T, kRelu>(plane(dy, n, c), plane(y, n, c), plane(x, n, c), L.S,
                            static_cast<T>(mu), &sg, &sgx);
      dg[c] = sgx * inv;
      db[c] = sg;
      const double g = gamma[c];
      // dx = c1 g + c2 x + c3
      const double c2 = train && M > 0 ? -g * inv * inv * inv * sgx / M : 0.0;
      t1[c] = static_cast<T>(g * inv);
      t2[c] = static_cast<T>(c2);
      t3[c] = static_cast<T>(train && M > 0 ? -g * inv * sg / M - c2 * mu : 0.0);
    };
    auto apply = [&](int64_t n, int64_t c) {
      const T a = t1[c], b = t2[c], e = t3[c];
      const T* gp = plane(dy, n, c);
      const T* xp = plane(x, n, c);
      const T* yp = plane(y, n, c);
      T* dp = plane(dx, n, c);
      if (dres) {
        T* rp = plane(dres, n, c);
        for (int64_t s = 0; s < L.S; ++s) {
          const T d = gp[s], v = yp[s];
          const T gv = !kRelu || v > T(0) ? d : T(0);
          rp[s] = gv;
          dp[s] = gv * a + xp[s] * b + e;
        }
      } else {
        for (int64_t s = 0; s < L.S; ++s) {
          const T d = gp[s], v = yp[s];
          const T gv = !kRelu || v > T(0) ? d : T(0);
          dp[s] = gv * a + xp[s] * b + e;
        }
      }
    };
    sweep(coef, apply);
  }
};

// ---- checks shared by the hooks and the passes ------------------------------------------------
bool layout_of(const std::vector<int64_t>& d, Layout* L) {
  if (d.size() < 2) {
    MX_ERROR_MSG << kOp << ": input 'data' must have ndim >= 2 (N, C, spatial...), got ndim "
                 << d.size();
    return false;
  }
  L->N = d[0];
  L->C = d[1];
  L->S = 1;
  for (size_t i = 2; i < d.size(); ++i) L->S *= d[i];
  return true;
}

// The forward inputs (p.num_in() of them: the hooks checked the count).
bool check_inputs(const BNReLUParam& p, const std::vector<MXTensor>& in, Layout* L) {
  if (!gm::check_float_inputs(kOp, kInputs, in, p.num_in())) return false;
  if (!layout_of(in[0].shape, L)) return false;
  for (int i = 1; i < kNumIn; ++i) {  // the channel vectors and the flag
    const int64_t n = i == 3 ? 1 : L->C;
    if (in[i].shape.size() != 1 || in[i].shape[0] != n) {
      MX_ERROR_MSG << kOp << ": input '" << kInputs[i] << "' has shape "
                   << gm::shape_str(in[i].shape) << ", expected (" << n << ",)"
                   << (i == 3 ? "" : " = (channels of 'data',)");
      return false;
    }
  }
  if (p.residual && in[6].shape != in[0].shape) {
    MX_ERROR_MSG << kOp << ": input 'residual' has shape " << gm::shape_str(in[6].shape)
                 << ", expected " << gm::shape_str(in[0].shape) << " = the shape of 'data'";
    return false;
  }
  return true;
}

// ---- lib_api hooks ----------------------------------------------------------------------------
gm::MXReturnValue parseAttrs(const gm::Attrs& attrs, int* num_in, int* num_out) {
  BNReLUParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  *num_in = p.num_in();
  *num_out = kNumOut;
  return gm::MX_SUCCESS;
}

// moving_mean and moving_var are auxiliary states (updated in place by the backward pass).
gm::MXReturnValue mutateInputs(const gm::Attrs& attrs, std::vector<int>* indices) {
  indices->push_back(4);
  indices->push_back(5);
  return gm::MX_SUCCESS;
}

gm::MXReturnValue inferType(const gm::Attrs& attrs, std::vector<int>* in, std::vector<int>* out) {
  BNReLUParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  return gm::same_float_type(kOp, kInputs, kNumIn + 1, in, out);
}

// Fills the channel vectors from data's shape (Gluon's deferred initialisation relies on it),
// checks the given ones, sets out = data's shape and mean/var (C,).
gm::MXReturnValue inferShape(const gm::Attrs& attrs, std::vector<std::vector<unsigned>>* in,
                             std::vector<std::vector<unsigned>>* out) {
  BNReLUParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "shape inference", in->size(), p.num_in(), out->size(), kNumOut))
    return gm::MX_FAIL;
  gm::Shape& data = (*in)[0];
  if (data.size() < 2) {
    MX_ERROR_MSG << kOp << ": input 'data' must have ndim >= 2 (N, C, spatial...), got "
                 << (data.empty() ? std::string("ndim 0 or an unknown shape")
                                  : "ndim " + std::to_string(data.size()));
    return gm::MX_FAIL;
  }
  // C from a known channel vector when data's is not known yet.
  if (!gm::dim_known(data[1])) {
    for (int i : {1, 2, 4, 5}) {
      const gm::Shape& v = (*in)[i];
      if (v.size() == 1 && gm::dim_known(v[0])) {
        data[1] = v[0];
        break;
      }
    }
  }
  const gm::Want d = gm::want_of(data);
  const int64_t c = d[1];
  const char* cm = "(channels of 'data',)";
  const bool ok =
      gm::settle_shape(kOp, "input", "gamma", &(*in)[1], {c}, cm) &&
      gm::settle_shape(kOp, "input", "beta", &(*in)[2], {c}, cm) &&
      gm::settle_shape(kOp, "input", "train_flag", &(*in)[3], {1}, "(1,)") &&
      gm::settle_shape(kOp, "input", "moving_mean", &(*in)[4], {c}, cm) &&
      gm::settle_shape(kOp, "input", "moving_var", &(*in)[5], {c}, cm) &&
      (!p.residual ||
       gm::settle_shape(kOp, "input", "residual", &(*in)[6], d, "the shape of 'data'")) &&
      gm::settle_shape(kOp, "output", "out", &(*out)[0], d, "the shape of 'data'") &&
      gm::settle_shape(kOp, "output", "mean", &(*out)[1], {c}, cm) &&
      gm::settle_shape(kOp, "output", "var", &(*out)[2], {c}, cm);
  return ok ? gm::MX_SUCCESS : gm::MX_FAIL;
}


template <typename T>
void run_forward(const Layout& L, const BNReLUParam& p, std::vector<MXTensor>& in,
                 std::vector<MXTensor>& out) {
  Cpu<T>{L}.forward(in[0].data<T>(), in[1].data<T>(), in[2].data<T>(), gm::train_flag_set<T>(in[3]),
                    in[4].data<T>(), in[5].data<T>(), p.residual ? in[6].data<T>() : nullptr,
                    p.relu, out[0].data<T>(), out[1].data<T>(), out[2].data<T>(), p.eps);
}

// inputs: [data, gamma, beta, train_flag, moving_mean, moving_var(, residual)];
// outputs: [out, mean, var]
gm::MXReturnValue forward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                          std::vector<MXTensor>* outputs, const OpResource& res) {
  BNReLUParam p;
  Layout L;
  if (!p.parse(attrs) ||
      !gm::check_counts(kOp, "forward", inputs->size(), p.num_in(), outputs->size(), kNumOut) ||
      !check_inputs(p, *inputs, &L))
    return gm::MX_FAIL;
  const int dt = (*inputs)[0].dtype;
  if (!gm::check_output(kOp, "out", (*outputs)[0], (*inputs)[0].shape, dt) ||
      !gm::check_output(kOp, "mean", (*outputs)[1], {L.C}, dt) ||
      !gm::check_output(kOp, "var", (*outputs)[2], {L.C}, dt))
    return gm::MX_FAIL;
  std::vector<MXTensor>& in = *inputs;
  std::vector<MXTensor>& out = *outputs;
  if (gm::on_gpu(in[0])) {
#ifdef GM_WITH_CUDA
    if (L.C == 0) return gm::MX_SUCCESS;
    const int elem = dt == mxnet::ext::kFloat64 ? 8 : 4;
    void* s = res.get_cuda_stream();
    const int64_t n = static_cast<int64_t>(out[0].size());
    int err = gm_ibn_forward_gpu(elem, in[0].data_ptr, nullptr, nullptr, in[1].data_ptr,
                                 in[2].data_ptr, in[3].data_ptr, in[4].data_ptr, in[5].data_ptr,
                                 out[0].data_ptr, out[1].data_ptr, out[2].data_ptr, L.N, L.C,
                                 L.S, 0, 0, 0, p.eps, s);
    if (err == 0 && (p.relu || p.residual))
      err = gm_add_relu_gpu(elem, out[0].data_ptr, p.residual ? in[6].data_ptr : nullptr,
                            p.relu ? 1 : 0, n, s);
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

// Positions in the backward inputs [grad_out, grad_mean, grad_var, <forward inputs>, out, mean,
// var] for a forward with num_in inputs.
struct BackwardSlots {
  int fwd, out, mean, var;
  explicit BackwardSlots(int num_in)
      : fwd(kNumOut), out(kNumOut + num_in), mean(out + 1), var(out + 2) {}
};

template <typename T>
void run_backward(const Layout& L, const BNReLUParam& p, std::vector<MXTensor>& in,
                  std::vector<MXTensor>& out) {
  const BackwardSlots k(p.num_in());
  std::vector<MXTensor*> f;  // the forward inputs
  for (int i = 0; i < p.num_in(); ++i) f.push_back(&in[k.fwd + i]);
  const bool train = gm::train_flag_set<T>(*f[3]);
  const T* mean = in[k.mean].data<T>();
  const T* var = in[k.var].data<T>();
  T* dres = p.residual ? out[6].data<T>() : nullptr;
  std::vector<double> dg(L.C), db(L.C);
  const Cpu<T> cpu{L};
  if (p.relu) {
    cpu.template backward<true>(in[0].data<T>(), f[0]->data<T>(), in[k.out].data<T>(),
                                f[1]->data<T>(), train, mean, var, out[0].data<T>(), dres,
                                dg.data(), db.data(), p.eps);
  } else {
    cpu.template backward<false>(in[0].data<T>(), f[0]->data<T>(), in[k.out].data<T>(),
                                 f[1]->data<T>(), train, mean, var, out[0].data<T>(), dres,
                                 dg.data(), db.data(), p.eps);
  }
  T* dgamma = out[1].data<T>();
  T* dbeta = out[2].data<T>();
  for (int64_t c = 0; c < L.C; ++c) {
    dgamma[c] = static_cast<T>(dg[c]);
    dbeta[c] = static_cast<T>(db[c]);
  }
  // The running statistics follow MXNet's BatchNorm: updated by a training backward pass.
  if (train && L.N * L.S > 0) {
    T* rm = f[4]->data<T>();
    T* rv = f[5]->data<T>();
    const double m = p.momentum;
    for (int64_t c = 0; c < L.C; ++c) {
      rm[c] = static_cast<T>(m * rm[c] + (1 - m) * static_cast<double>(mean[c]));
      rv[c] = static_cast<T>(m * rv[c] + (1 - m) * static_cast<double>(var[c]));
    }
  }
}

// inputs: [grad_out, grad_mean, grad_var, data, gamma, beta, train_flag, moving_mean,
//          moving_var(, residual), out, mean, var]
// outputs: one gradient per forward input; train_flag's gets zeros, the running statistics'
// slots are left alone; every gradient is overwritten (extension operators are not told `req`;
// the Gluon layer feeds graph inputs through stock identities). `mean`/`var` carry none.
gm::MXReturnValue backward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                           std::vector<MXTensor>* outputs, const OpResource& res) {
  BNReLUParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  const int num_in = p.num_in();
  if (!gm::check_counts(kOp, "backward", inputs->size(), 2 * kNumOut + num_in, outputs->size(),
                        num_in))
    return gm::MX_FAIL;
  std::vector<MXTensor>& in = *inputs;
  std::vector<MXTensor>& out = *outputs;
  const BackwardSlots k(num_in);
  std::vector<MXTensor> fwd_in(in.begin() + k.fwd, in.begin() + k.fwd + num_in);
  Layout L;
  if (!check_inputs(p, fwd_in, &L)) return gm::MX_FAIL;
  const int dt = fwd_in[0].dtype;
  for (int i : {0, k.out}) {
    if (in[i].dtype != dt || in[i].shape != fwd_in[0].shape) {
      MX_ERROR_MSG << kOp << ": the " << (i == 0 ? "output gradient" : "saved output")
                   << " has shape " << gm::shape_str(in[i].shape) << " and dtype "
                   << gm::dtype_name(in[i].dtype) << ", expected those of 'data'";
      return gm::MX_FAIL;
    }
  }
  for (int i : {k.mean, k.var}) {
    if (in[i].dtype != dt || in[i].shape != std::vector<int64_t>{L.C}) {
      MX_ERROR_MSG << kOp << ": the saved statistics '" << (i == k.mean ? "mean" : "var")
                   << "' have shape " << gm::shape_str(in[i].shape) << ", expected (" << L.C
                   << ",)";
      return gm::MX_FAIL;
    }
  }
  for (int i = 0; i < num_in; ++i) {
    if (i >= 3 && i <= 5) continue;  // train_flag and the auxiliary states: below
    const std::string name = std::string("grad_") + kInputs[i];
    if (!gm::check_output(kOp, name.c_str(), out[i], fwd_in[i].shape, dt)) return gm::MX_FAIL;
  }
  // train_flag has no gradient: zeros where its slot is allocated as expected; the slots of the
  // auxiliary states are never written (see ibn.cc).
  const bool zero_flag =
      out[3].data_ptr != nullptr && out[3].shape == fwd_in[3].shape && out[3].dtype == dt;
  if (gm::on_gpu(fwd_in[0])) {
#ifdef GM_WITH_CUDA
    if (L.C == 0) return gm::MX_SUCCESS;  // nothing to launch (train_flag's slot: no channel)
    const int elem = dt == mxnet::ext::kFloat64 ? 8 : 4;
    void* s = res.get_cuda_stream();
    const int64_t n = static_cast<int64_t>(fwd_in[0].size());
    // per-channel partial sums (dg, db) in double, then (relu without residual) the masked
    // output gradient; with a residual the masked gradient is the residual's gradient itself
    const size_t sums = static_cast<size_t>(2 * L.C * sizeof(double) + 16);
    const bool scratch = p.relu && !p.residual;
    const size_t bytes = sums + (scratch ? static_cast<size_t>(n * elem) : 0);
    char* work = static_cast<char*>(res.alloc_gpu(static_cast<int>(bytes)));
    if (!work) {
      MX_ERROR_MSG << kOp << ": cannot allocate GPU workspace";
      return gm::MX_FAIL;
    }
    const void* dy = in[0].data_ptr;
    int err = 0;
    if (p.relu || p.residual) {
      void* g = p.residual ? out[6].data_ptr : static_cast<void*>(work + sums);
      err = gm_relu_mask_gpu(elem, in[0].data_ptr, p.relu ? in[k.out].data_ptr : nullptr, g, n,
                             s);
      dy = g;
    }
    if (err == 0)
      err = gm_ibn_backward_gpu(elem, dy, fwd_in[0].data_ptr, nullptr, fwd_in[1].data_ptr,
                                fwd_in[3].data_ptr, fwd_in[4].data_ptr, fwd_in[5].data_ptr,
                                in[k.mean].data_ptr, in[k.var].data_ptr, out[0].data_ptr,
                                nullptr, nullptr, out[1].data_ptr, out[2].data_ptr, work, L.N,
                                L.C, L.S, 0, 0, 0, p.eps, p.momentum, s);
    if (err == 0 && zero_flag) err = gm_fm_zero_gpu(out[3].data_ptr, elem, s);
    return gm::gpu_status(kOp, err);
#else
    return gm::gpu_status(kOp, -1);
#endif
  }
  if (dt == mxnet::ext::kFloat64) {
    run_backward<double>(L, p, in, out);
    if (zero_flag) out[3].data<double>()[0] = 0.0;
  } else {
    run_backward<float>(L, p, in, out);
    if (zero_flag) out[3].data<float>()[0] = 0.0f;
  }
  return gm::MX_SUCCESS;
}

}  // namespace

REGISTER_OP(BNReLU)
    .setParseAttrs(parseAttrs)
    .setInferType(inferType)
    .setInferShape(inferShape)
    .setInferSType(gm::all_dense)
    .setMutateInputs(mutateInputs)
    .GM_PASSES(forward, backward);
