// Launchers of the CUDA kernels. Implemented in *_kernels.cu (compiled by nvcc without
// lib_api.h); the stream arrives as void* and each launcher returns a cudaError_t as int.
#pragma once
#include <cstdint>

extern "C" {
const char* gm_cuda_error_string(int err);
int gm_reorder_gpu(const void* in, void* out, int64_t outer, int64_t channels, int64_t inner,
                   int64_t branch_factor, int elem_size, void* stream);
}
