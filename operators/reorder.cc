// Reorder: the channel permutation of Interleaved Group Convolutions (IGCNets, ICCV 2017).
//
// Named and parameterised like the authors' operator so their published symbols load:
//   Reorder(data, branch_factor, workspace)
// For channels on axis 1 viewed as a B x Q matrix (B = branch_factor, Q = C / B):
//   out[:, k*B + b] = in[:, b*Q + k]
// i.e. a transpose of that matrix (ShuffleNet's channel shuffle with B groups). The inverse of
// Reorder(B) is Reorder(Q), so the backward pass is the forward kernel with B and Q swapped.
// `workspace` is accepted for compatibility and ignored (no temporary memory is needed).
#include <cstring>

#include "gm_common.h"
#ifdef GM_WITH_CUDA
#include "gm_cuda.h"
#endif

using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;

namespace {

const char* kOp = "Reorder";

struct ReorderParam {
  int64_t branch_factor;
  int64_t workspace;

  bool parse(const gm::Attrs& attrs) {
    gm::AttrReader r(attrs, kOp);
    return r.get_int("branch_factor", &branch_factor, true, 0, 1, INT32_MAX) &&
           r.get_int("workspace", &workspace, false, 1024, 0, 8192) && r.finish();
  }
};

// ---- pure CPU kernel ---------------------------------------------------------------------
// `outer` = product of the axes before the channel axis, `inner` = product of those after it.
// T is an unsigned integer of the element's width: the permutation only moves bytes.
template <typename T>
void reorder_cpu(const T* in, T* out, int64_t outer, int64_t C, int64_t inner, int64_t B) {
  const int64_t Q = C / B;
  if (inner == 1) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < outer; ++n) {
      const T* src = in + n * C;
      T* dst = out + n * C;
      for (int64_t k = 0; k < Q; ++k)
        for (int64_t b = 0; b < B; ++b) dst[k * B + b] = src[b * Q + k];
    }
    return;
  }
  // For each (n, b) the source channels b*Q .. b*Q+Q-1 are one contiguous block: read it in
  // order and scatter its rows with stride B. Small tensors stay on one thread, where the
  // OpenMP fork costs more than the copy.
  const size_t bytes = static_cast<size_t>(inner) * sizeof(T);
  const bool parallel = static_cast<size_t>(outer * C) * bytes >= (size_t{1} << 20);
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t n = 0; n < outer; ++n) {
    for (int64_t b = 0; b < B; ++b) {
      const T* src = in + (n * C + b * Q) * inner;
      T* dst = out + (n * C + b) * inner;
      for (int64_t k = 0; k < Q; ++k) std::memcpy(dst + k * B * inner, src + k * inner, bytes);
    }
  }
}

void reorder_cpu_any(const void* in, void* out, int64_t outer, int64_t C, int64_t inner,
                     int64_t B, int elem_size) {
  switch (elem_size) {
    case 2:
      reorder_cpu(static_cast<const uint16_t*>(in), static_cast<uint16_t*>(out), outer, C,
                  inner, B);
      break;
    case 4:
      reorder_cpu(static_cast<const uint32_t*>(in), static_cast<uint32_t*>(out), outer, C,
                  inner, B);
      break;
    default:
      reorder_cpu(static_cast<const uint64_t*>(in), static_cast<uint64_t*>(out), outer, C,
                  inner, B);
  }
}

int elem_size_of(int dtype) {
  switch (dtype) {
    case mxnet::ext::kFloat16: return 2;
    case mxnet::ext::kFloat32: return 4;
    case mxnet::ext::kFloat64: return 8;
    default: return 0;
  }
}

// Checks the tensor a kernel is about to read and returns its layout.
bool layout_of(const MXTensor& t, const char* what, const ReorderParam& p, int64_t* outer,
               int64_t* C, int64_t* inner, int* elem) {
  if (t.shape.size() < 2) {
    MX_ERROR_MSG << kOp << ": input '" << what << "' must have ndim >= 2, got ndim "
                 << t.shape.size();
    return false;
  }
  *elem = elem_size_of(t.dtype);
  if (*elem == 0) {
    MX_ERROR_MSG << kOp << ": input '" << what << "' has unsupported dtype "
                 << gm::dtype_name(t.dtype) << " (supported: float32, float64, float16)";
    return false;
  }
  *C = t.shape[1];
  if (*C % p.branch_factor != 0) {
    MX_ERROR_MSG << kOp << ": channels (axis 1) of '" << what << "' = " << *C
                 << " not divisible by argument 'branch_factor' = " << p.branch_factor;
    return false;
  }
  *outer = t.shape[0];
  *inner = 1;
  for (size_t i = 2; i < t.shape.size(); ++i) *inner *= t.shape[i];
  return true;
}

// ---- lib_api hooks -----------------------------------------------------------------------
gm::MXReturnValue parseAttrs(const gm::Attrs& attrs, int* num_in, int* num_out) {
  ReorderParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  *num_in = 1;
  *num_out = 1;
  return gm::MX_SUCCESS;
}

gm::MXReturnValue inferType(const gm::Attrs& attrs, std::vector<int>* in,
                            std::vector<int>* out) {
  if (!gm::check_counts(kOp, "type inference", in->size(), 1, out->size(), 1)) return gm::MX_FAIL;
  int t = (*in)[0];
  if (t >= 0 && elem_size_of(t) == 0) {
    MX_ERROR_MSG << kOp << ": input 'data' has unsupported dtype " << gm::dtype_name(t)
                 << " (supported: float32, float64, float16)";
    return gm::MX_FAIL;
  }
  (*out)[0] = t;
  return gm::MX_SUCCESS;
}

// out = data (a permutation of channels). The output is set whenever the data's ndim is known,
// unknown dimensions included (see gm_common.h: an output left empty would become ()).
gm::MXReturnValue inferShape(const gm::Attrs& attrs, std::vector<std::vector<unsigned>>* in,
                             std::vector<std::vector<unsigned>>* out) {
  ReorderParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "shape inference", in->size(), 1, out->size(), 1))
    return gm::MX_FAIL;
  const gm::Shape& s = (*in)[0];
  if (s.size() < 2) {
    MX_ERROR_MSG << kOp << ": input 'data' must have ndim >= 2 (channels on axis 1), got "
                 << (s.empty() ? "ndim 0 or an unknown shape" : "ndim 1");
    return gm::MX_FAIL;
  }
  if (gm::dim_known(s[1]) && s[1] % p.branch_factor != 0) {
    MX_ERROR_MSG << kOp << ": channels (axis 1) of 'data' = " << s[1]
                 << " not divisible by argument 'branch_factor' = " << p.branch_factor;
    return gm::MX_FAIL;
  }
  return gm::settle_shape(kOp, "output", "out", &(*out)[0], gm::want_of(s), "the shape of 'data'")
             ? gm::MX_SUCCESS
             : gm::MX_FAIL;
}

// Runs the permutation `src -> dst` with factor B on the device the tensors live on.
// `dst` must have the shape and dtype of `src` (it is written with src.size() elements).
gm::MXReturnValue run(MXTensor& src, MXTensor& dst, const char* what, const char* dst_name,
                      const ReorderParam& p, bool inverse, const OpResource& res) {
  int64_t outer, C, inner;
  int elem;
  if (!layout_of(src, what, p, &outer, &C, &inner, &elem)) return gm::MX_FAIL;
  if (!gm::check_output(kOp, dst_name, dst, src.shape, src.dtype)) return gm::MX_FAIL;
  const int64_t B = inverse ? C / p.branch_factor : p.branch_factor;
  if (src.size() == 0) return gm::MX_SUCCESS;
  if (src.ctx.dev_type == "gpu") {
#ifdef GM_WITH_CUDA
    return gm::gpu_status(kOp, gm_reorder_gpu(src.data_ptr, dst.data_ptr, outer, C, inner, B,
                                              elem, res.get_cuda_stream()));
#else
    return gm::gpu_status(kOp, -1);
#endif
  }
  reorder_cpu_any(src.data_ptr, dst.data_ptr, outer, C, inner, B, elem);
  return gm::MX_SUCCESS;
}

// inputs: [data]; outputs: [out]
gm::MXReturnValue forward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                          std::vector<MXTensor>* outputs, const OpResource& res) {
  ReorderParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "forward", inputs->size(), 1, outputs->size(), 1))
    return gm::MX_FAIL;
  return run((*inputs)[0], (*outputs)[0], "data", "out", p, false, res);
}

// inputs: [grad_out, data, out]; outputs: [grad_data]
// The permutation is orthogonal, so grad_data = Reorder(C/B)(grad_out). Extension operators
// are not told `req` (they always overwrite); the Gluon layer guards the cases where MXNet
// would ask for accumulation (gluon_models/nn/igc.py).
gm::MXReturnValue backward(const gm::Attrs& attrs, std::vector<MXTensor>* inputs,
                           std::vector<MXTensor>* outputs, const OpResource& res) {
  ReorderParam p;
  if (!p.parse(attrs)) return gm::MX_FAIL;
  if (!gm::check_counts(kOp, "backward", inputs->size(), 3, outputs->size(), 1))
    return gm::MX_FAIL;
  return run((*inputs)[0], (*outputs)[0], "grad_out", "grad_data", p, true, res);
}

}  // namespace

REGISTER_OP(Reorder)
    .setParseAttrs(parseAttrs)
    .setInferType(inferType)
    .setInferShape(inferShape)
    .GM_PASSES(forward, backward);
