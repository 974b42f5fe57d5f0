// Shared glue for the gluon-models operator library: attribute parsing with named errors,
// dtype names, and the CUDA launch interface (kernels live in *_kernels.cu, which must not
// include lib_api.h, see spec/platform.md section 3).
#pragma once

#include <cerrno>
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

  // A tuple such as "(3, 3)", "[3,3]" or a single integer "3" (repeated n times).
  bool get_tuple(const char* key, std::vector<int64_t>* out, size_t n, bool required,
                 const std::vector<int64_t>& def, int64_t lo) {
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
    std::vector<int64_t> vals;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (trim(item).empty()) continue;  // "(3,)"
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
      if (v < lo) {
        std::ostringstream msg;
        msg << "elements must be >= " << lo;
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

// A shape reported by MXNet during partial inference: no dims yet, or a dim not known yet.
inline bool shape_known(const std::vector<unsigned int>& s) {
  if (s.empty()) return false;
  for (unsigned int d : s)
    if (d == 0 || d == static_cast<unsigned int>(-1)) return false;
  return true;
}

}  // namespace gm
