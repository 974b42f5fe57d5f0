// Shared glue for the gluon-models operator library: error messages that do not pile up,
// attribute parsing with named errors, dtype names, the shape rules of the inference hooks
// and the output checks of the passes. Every operator includes this header (after, never
// instead of, lib_api.h) so that it inherits all of them. The CUDA launch interface lives in
// gm_cuda.h (kernels live in *_kernels.cu, which must not include lib_api.h).
#pragma once

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "mxnet/lib_api.h"

namespace gm {

// ---- error messages ---------------------------------------------------------------------------
// lib_api keeps every MX_ERROR_MSG in one process-wide list that is never cleared, and MXNet
// quotes the whole list with each new failure: after thousands of failed calls every error was
// hundreds of kB and began with the first error ever raised. clear_error_messages() (library.cc)
// empties that list, so each failure carries only its own message. The macro is redefined so
// that every operator inherits this by writing MX_ERROR_MSG as usual; a failure must therefore
// say everything in one message (a second MX_ERROR_MSG replaces the first). MXNet reads the
// list right after the failing hook returns, on the same thread; the list itself is not
// thread-safe (nor was it before), which is why the clear takes the same lock as the add here.
void clear_error_messages();
std::stringstream& fresh_error_message(const char* file, int line);

}  // namespace gm

#undef MX_ERROR_MSG
#define MX_ERROR_MSG ::gm::fresh_error_message(__FILE__, __LINE__)

namespace gm {

using mxnet::ext::MXReturnValue;
using mxnet::ext::MX_FAIL;
using mxnet::ext::MX_SUCCESS;
using Attrs = std::unordered_map<std::string, std::string>;

inline const char* dtype_name(int t) {
  switch (t) {
    case mxnet::ext::kFloat32: return "float32";
    case mxnet::ext::kFloat64: return "float64";
    case mxnet::ext::kFloat16: return "float16";
    case mxnet::ext::kUint8: return "uint8";
    case mxnet::ext::kInt32: return "int32";
    case mxnet::ext::kInt8: return "int8";
    case mxnet::ext::kInt64: return "int64";
    default: return "an unknown dtype";
  }
}

inline std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// MXNet and Gluon attach bookkeeping attributes such as __profiler_scope__ to every node;
// they are not operator arguments.
inline bool is_framework_attr(const std::string& k) {
  return k.size() >= 4 && k.compare(0, 2, "__") == 0 && k.compare(k.size() - 2, 2, "__") == 0;
}

inline bool parse_int(const std::string& text, int64_t* out) {
  std::string s = trim(text);
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0') return false;
  *out = static_cast<int64_t>(v);
  return true;
}

// Reads one operator's attributes. Every getter records the key as known; finish() rejects
// the keys nobody asked for. Each failure is one MX_ERROR_MSG naming the operator and key.
class AttrReader {
 public:
  AttrReader(const Attrs& attrs, const char* op) : attrs_(attrs), op_(op) {}

  bool get_int(const char* key, int64_t* out, bool required, int64_t def, int64_t lo,
               int64_t hi) {
    known_.insert(key);
    auto it = attrs_.find(key);
    if (it == attrs_.end()) {
      if (required) return fail(key, "is required");
      *out = def;
      return true;
    }
    int64_t v;
    if (!parse_int(it->second, &v)) return fail(key, "must be an integer", it->second);
    if (v < lo || v > hi) {
      std::ostringstream msg;
      msg << "must be in [" << lo << ", " << hi << "]";
      return fail(key, msg.str(), it->second);
    }
    *out = v;
    return true;
  }

  bool get_float(const char* key, double* out, bool required, double def, double lo,
                 double hi, bool hi_inclusive = true) {
    known_.insert(key);
    auto it = attrs_.find(key);
    if (it == attrs_.end()) {
      if (required) return fail(key, "is required");
      *out = def;
      return true;
    }
    std::string s = trim(it->second);
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || errno != 0 || *end != '\0' || !std::isfinite(v))
      return fail(key, "must be a finite number", it->second);
    if (v < lo || v > hi || (!hi_inclusive && v == hi)) {
      std::ostringstream msg;
      msg << "must be in [" << lo << ", " << hi << (hi_inclusive ? "]" : ")");
      return fail(key, msg.str(), it->second);
    }
    *out = v;
    return true;
  }

  bool get_bool(const char* key, bool* out, bool def) {
    known_.insert(key);
    auto it = attrs_.find(key);
    if (it == attrs_.end()) {
      *out = def;
      return true;
    }
    std::string s = trim(it->second);
    if (s == "True" || s == "true" || s == "1") {
      *out = true;
    } else if (s == "False" || s == "false" || s == "0") {
      *out = false;
    } else {
      return fail(key, "must be True or False", it->second);
    }
    return true;
  }

  // A tuple such as "(3, 3)", "[3,3]" or a single integer "3" (repeated n times), every element
  // in [lo, hi].
  bool get_tuple(const char* key, std::vector<int64_t>* out, size_t n, bool required,
                 const std::vector<int64_t>& def, int64_t lo, int64_t hi = INT64_MAX) {
    known_.insert(key);
    auto it = attrs_.find(key);
    if (it == attrs_.end()) {
      if (required) return fail(key, "is required");
      *out = def;
      return true;
    }
    std::string s = trim(it->second);
    if (!s.empty() && (s.front() == '(' || s.front() == '[')) {
      if (s.size() < 2 || (s.back() != ')' && s.back() != ']'))
        return fail(key, "must be a tuple of integers", it->second);
      s = s.substr(1, s.size() - 2);
    }
    // One trailing comma is Python's tuple spelling, "(3,)" / "(3, 3,)"; any other empty
    // item ("(3,,3)", "(,3)", "(3,,)") is a malformed tuple, not a shorter one.
    s = trim(s);
    if (!s.empty() && s.back() == ',') s.pop_back();
    std::vector<int64_t> vals;
    std::stringstream ss(s + ",");  // getline drops an empty last item: keep every item
    std::string item;
    while (std::getline(ss, item, ',')) {
      int64_t v;
      if (!parse_int(item, &v)) return fail(key, "must be a tuple of integers", it->second);
      vals.push_back(v);
    }
    if (vals.size() == 1 && n > 1) vals.assign(n, vals[0]);
    if (vals.size() != n) {
      std::ostringstream msg;
      msg << "must have " << n << " elements";
      return fail(key, msg.str(), it->second);
    }
    for (int64_t v : vals) {
      if (v < lo || v > hi) {
        std::ostringstream msg;
        msg << "elements must be " << (v < lo ? ">= " : "<= ") << (v < lo ? lo : hi);
        return fail(key, msg.str(), it->second);
      }
    }
    *out = vals;
    return true;
  }

  bool finish() {
    for (const auto& kv : attrs_) {
      if (known_.count(kv.first) || is_framework_attr(kv.first)) continue;
      MX_ERROR_MSG << op_ << ": unknown argument '" << kv.first << "'";
      return false;
    }
    return true;
  }

 private:
  bool fail(const char* key, const std::string& what, const std::string& got = "") {
    if (got.empty()) {
      MX_ERROR_MSG << op_ << ": argument '" << key << "' " << what;
    } else {
      MX_ERROR_MSG << op_ << ": argument '" << key << "' " << what << ", got '" << got << "'";
    }
    return false;
  }

  const Attrs& attrs_;
  const char* op_;
  std::set<std::string> known_;
};

// ---- shapes in the inference hooks --------------------------------------------------------------
// What MXNet 1.9.1's glue hands an inferShape hook (src/c_api/c_api.cc): a dimension it does not
// know yet arrives as UINT_MAX (its -1 cast to unsigned) and is read back the same way, so it
// stays unknown; 0 is a real, empty extent (legacy mode turns a user's 0 into "unknown" before
// the hook sees it). An input whose ndim is unknown arrives empty, exactly like a 0-d shape.
// Whatever a hook leaves in an output slot is taken as the output shape: an empty slot
// becomes the 0-d shape (), silently, which is why every hook must set each output as soon as
// its ndim is known (and fail, naming the input, when it cannot). The glue miscounts the buffer
// it copies the input shapes into when an input's ndim is unknown (it adds -1 for it), so an
// operator must never be asked to infer with such an input: gluon_models/ops.py resolves the
// shapes before MXNet's inference runs.
constexpr unsigned kUnknownDim = UINT_MAX;
using Shape = std::vector<unsigned>;

inline bool dim_known(unsigned d) { return d != kUnknownDim; }

// Every dimension known (a 0-d shape counts as known; hooks decide what an empty slot means).
inline bool shape_known(const Shape& s) {
  for (unsigned d : s)
    if (!dim_known(d)) return false;
  return true;
}

// A target shape: int64 with -1 for "not known yet".
using Want = std::vector<int64_t>;

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) {
    os << (i ? ", " : "");
    if (s[i] < 0) os << "?"; else os << s[i];
  }
  os << (s.size() == 1 ? ",)" : ")");
  return os.str();
}

inline Want want_of(const Shape& s) {
  Want w;
  for (unsigned d : s) w.push_back(dim_known(d) ? static_cast<int64_t>(d) : -1);
  return w;
}

inline Shape shape_of(const Want& w) {
  Shape s;
  for (int64_t d : w) s.push_back(d < 0 ? kUnknownDim : static_cast<unsigned>(d));
  return s;
}

// Merges what an inference hook derived for one slot (`want`, -1 = not derived) into what MXNet
// knows (`slot`, empty = nothing yet): fills the unknown dimensions, and fails with a message
// naming the slot and `meaning` when a known dimension disagrees or the ndim differs. Used for
// input and output slots alike, so a slot is never left empty once its ndim is known.
inline bool settle_shape(const char* op, const char* kind, const char* name, Shape* slot,
                         const Want& want, const char* meaning) {
  if (slot->empty()) {
    *slot = shape_of(want);
    return true;
  }
  bool ok = slot->size() == want.size();
  for (size_t i = 0; ok && i < want.size(); ++i)
    ok = want[i] < 0 || !dim_known((*slot)[i]) || (*slot)[i] == static_cast<unsigned>(want[i]);
  if (!ok) {
    MX_ERROR_MSG << op << ": " << kind << " '" << name << "' has shape "
                 << shape_str(want_of(*slot)) << ", expected " << shape_str(want) << " = "
                 << meaning;
    return false;
  }
  for (size_t i = 0; i < want.size(); ++i)
    if (!dim_known((*slot)[i]) && want[i] >= 0) (*slot)[i] = static_cast<unsigned>(want[i]);
  return true;
}

// ---- tensor counts ------------------------------------------------------------------------------
// How many tensors a hook receives follows from parseAttrs, so a mismatch is a framework fault;
// it is still checked before any slot is touched and reported with the operator and the hook
// (`hook`: "type inference", "shape inference", "forward", "backward").
inline bool check_counts(const char* op, const char* hook, size_t n_in, size_t want_in,
                         size_t n_out, size_t want_out) {
  if (n_in == want_in && n_out == want_out) return true;
  MX_ERROR_MSG << op << ": " << hook << " expects " << want_in << " input(s) and " << want_out
               << " output(s), got " << n_in << " and " << n_out;
  return false;
}

// ---- tensors in the passes ----------------------------------------------------------------------
// MXNet allocates an output from the shape the inference hook reported; a pass must write only
// into an output whose shape and dtype are exactly what it computes. Any mismatch (a hook that
// left a slot empty, a stale shape, a dtype the hook did not settle) is a named failure, never
// a write past the buffer.
inline bool check_output(const char* op, const char* name, const mxnet::ext::MXTensor& t,
                         const std::vector<int64_t>& want, int dtype) {
  if (t.shape != want) {
    MX_ERROR_MSG << op << ": output '" << name << "' was allocated with shape "
                 << shape_str(t.shape) << " but the operator writes " << shape_str(want);
    return false;
  }
  if (t.dtype != dtype) {
    MX_ERROR_MSG << op << ": output '" << name << "' was allocated with dtype "
                 << dtype_name(t.dtype) << " but the operator writes " << dtype_name(dtype);
    return false;
  }
  return true;
}

// ---- hooks shared by the normalisation operators (IBN, BNReLU) ----------------------------------
inline bool float_dtype(int t) { return t == mxnet::ext::kFloat32 || t == mxnet::ext::kFloat64; }

// inferType of an operator whose tensors all share one float32/float64 dtype: the first known
// one, checked against the others (named by `names`, n of them) and given to every slot.
inline MXReturnValue same_float_type(const char* op, const char* const* names, size_t n,
                                     std::vector<int>* in, std::vector<int>* out) {
  int t = -1;
  for (size_t i = 0; i < in->size(); ++i) {
    const int ti = (*in)[i];
    if (ti < 0) continue;
    const char* name = i < n ? names[i] : "?";
    if (!float_dtype(ti)) {
      MX_ERROR_MSG << op << ": input '" << name << "' has unsupported dtype " << dtype_name(ti)
                   << " (supported: float32, float64)";
      return MX_FAIL;
    }
    if (t >= 0 && ti != t) {
      MX_ERROR_MSG << op << ": input '" << name << "' has dtype " << dtype_name(ti)
                   << " but an earlier input has " << dtype_name(t);
      return MX_FAIL;
    }
    t = ti;
  }
  for (auto& ti : *in) ti = t;
  for (auto& to : *out) to = t;
  return MX_SUCCESS;
}

// The passes' check of the same: every input float32/float64, all of input 0's dtype (the first
// n named by `names`). Returns false after one message naming the input.
inline bool check_float_inputs(const char* op, const char* const* names,
                               const std::vector<mxnet::ext::MXTensor>& in, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!float_dtype(in[i].dtype)) {
      MX_ERROR_MSG << op << ": input '" << names[i] << "' has unsupported dtype "
                   << dtype_name(in[i].dtype) << " (supported: float32, float64)";
      return false;
    }
    if (in[i].dtype != in[0].dtype) {
      MX_ERROR_MSG << op << ": input '" << names[i] << "' has dtype "
                   << dtype_name(in[i].dtype) << " but '" << names[0] << "' has "
                   << dtype_name(in[0].dtype);
      return false;
    }
  }
  return true;
}

// inferSType declaring every tensor dense: needed by operators with auxiliary states, where
// MXNet's default check fails (their storage type is not yet known when it runs); MXNet calls
// it for the backward node as well, with its own counts.
inline MXReturnValue all_dense(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  for (auto& t : *in) t = mxnet::ext::kDefaultStorage;
  for (auto& t : *out) t = mxnet::ext::kDefaultStorage;
  return MX_SUCCESS;
}

inline bool on_gpu(const mxnet::ext::MXTensor& t) { return t.ctx.dev_type == "gpu"; }

}  // namespace gm

#ifdef GM_WITH_CUDA
extern "C" const char* gm_cuda_error_string(int err);  // gm_cuda.h, reorder_kernels.cu
#endif

namespace gm {

// The result of an operator's GPU pass: `err` from the CUDA launchers (0 = success, > 0 a
// cudaError_t), or -1 where the library was built without CUDA; failures name the operator.
inline MXReturnValue gpu_status(const char* op, int err) {
  if (err == 0) return MX_SUCCESS;
#ifdef GM_WITH_CUDA
  if (err > 0) {
    MX_ERROR_MSG << op << ": CUDA error " << gm_cuda_error_string(err);
    return MX_FAIL;
  }
#endif
  MX_ERROR_MSG << op << ": this operator library was built without CUDA";
  return MX_FAIL;
}

// The CPU hooks of an operator, and its GPU hooks where the library is built with CUDA (the
// passes themselves choose the kernels by the tensors' context):
//   REGISTER_OP(Name).setParseAttrs(...)...GM_PASSES(forward, backward);
#ifdef GM_WITH_CUDA
#define GM_PASSES(fwd, bwd) \
  setForward(fwd, "cpu").setBackward(bwd, "cpu").setForward(fwd, "gpu").setBackward(bwd, "gpu")
#else
#define GM_PASSES(fwd, bwd) setForward(fwd, "cpu").setBackward(bwd, "cpu")
#endif

// ---- kernels compiled twice ---------------------------------------------------------------------
// The library is built for the baseline x86-64 ISA. A CPU loop that pays for wider vectors is
// written once as an always-inline function and called from two entry points, a plain one and
// one carrying GM_TARGET_AVX512 (GCC inlines the body into each and vectorises it for that
// target); cpu_has_avx512() picks one at run time.
#define GM_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))

inline bool cpu_has_avx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           getenv("GLUON_MODELS_NO_AVX512") == nullptr;
  }();
  return has;
}

// A (1,) train_flag input (see the Gluon layers' train_mode_flag): training when > 0.5.
template <typename T>
bool train_flag_set(mxnet::ext::MXTensor& flag) {
  return static_cast<double>(flag.data<T>()[0]) > 0.5;
}

}  // namespace gm
