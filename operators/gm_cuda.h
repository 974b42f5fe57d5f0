// Launchers of the CUDA kernels. Implemented in *_kernels.cu (compiled by nvcc without
// lib_api.h); the stream arrives as void* and each launcher returns a cudaError_t as int.
// This header is plain C++ (no CUDA, no lib_api.h): fmconv.cc includes it in every build for
// the geometry struct, and calls the launchers only when built with GM_WITH_CUDA.
#pragma once
#include <cstdint>

// Geometry of one FMConvolution call (see fmconv.cc): data (N, C, H, W), weight
// (O, Fn, C/G, kh, kw), output (N, O, OH, OW); L = OH * OW, K = (C/G) * kh * kw.
struct gm_fm_geom {
  int64_t N, C, H, W, O, Fn, G, Cg, Og, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, L, K;
};

// Geometry of one GroupConv call (see groupconv.cc): data (N, C, H, W), weight
// (F, C/G, kh, kw), output (N, F, OH, OW).
struct gm_gc_geom {
  int64_t N, C, H, W, F, G, OH, OW, kh, kw, sh, sw, ph, pw;
};

extern "C" {
const char* gm_cuda_error_string(int err);
int gm_reorder_gpu(const void* in, void* out, int64_t outer, int64_t channels, int64_t inner,
                   int64_t branch_factor, int elem_size, void* stream);

// FMConvolution kernels (fmconv_kernels.cu). `elem` is the element size: 4 (float32) or
// 8 (float64). Matrices are row-major; each launcher mirrors the CPU function of the same
// role in fmconv.cc.
// C = alpha * op(A) * op(B) + beta * C; op(A) is M x K, op(B) is K x N; beta == 0 never reads C.
int gm_fm_gemm_gpu(int elem, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                   double alpha, const void* A, int64_t lda, const void* B, int64_t ldb,
                   double beta, void* C, int64_t ldc, void* stream);
// X[r, s] (and XX = X * X) for images [n0, n0 + nb) of group gi; r = (c*kh + ky)*kw + kx,
// s = (n - n0)*L + oy*OW + ox.
int gm_fm_im2col_gpu(int elem, const gm_fm_geom* g, const void* x, int64_t n0, int64_t nb,
                     int64_t gi, void* X, void* XX, void* stream);
// dx[n, gi*Cg + c, iy, ix] = sum of the dX entries of all taps that read that pixel (writes
// every pixel of the block's planes: the exact adjoint of im2col).
int gm_fm_col2im_gpu(int elem, const gm_fm_geom* g, const void* dX, int64_t n0, int64_t nb,
                     int64_t gi, void* dx, void* stream);
// D[j, r] = sum_f m_f^2 W[j, f, r]^2 for oc output channels.
int gm_fm_mask_sq_norm_gpu(int elem, const void* W, const void* m, int64_t oc, int64_t Fn,
                           int64_t K, void* D, void* stream);
// y[n0 + nl, o0 + j, l] = sum_f m_f^2 Z[j, f, nl*L + l]^2 - Cc[j, nl*L + l] + bias[j].
int gm_fm_assemble_out_gpu(int elem, const void* Z, const void* Cc, const void* m,
                           const void* bias, int64_t oc, int64_t Fn, int64_t nb, int64_t L,
                           void* y, int64_t n0, int64_t o0, int64_t O, void* stream);
// Gy[j, nl*L + l] = gy[n0 + nl, o0 + j, l].
int gm_fm_gather_gy_gpu(int elem, const void* gy, int64_t n0, int64_t nb, int64_t o0,
                        int64_t oc, int64_t O, int64_t L, void* Gy, void* stream);
// Z[j, f, s] *= 2 m_f^2 Gy[j, s].
int gm_fm_make_p_gpu(int elem, void* Z, const void* Gy, const void* m, int64_t oc, int64_t Fn,
                     int64_t S, void* stream);
// dW[j, f, r] -= 2 m_f^2 W[j, f, r] E[j, r].
int gm_fm_dw_correction_gpu(int elem, void* dW, const void* W, const void* E, const void* m,
                            int64_t oc, int64_t Fn, int64_t K, void* stream);
// dX[i] -= 2 T[i] X[i]   (legacy: dX[i] -= 2 T[i]).
int gm_fm_dx_correction_gpu(int elem, void* dX, const void* T, const void* X, int64_t n,
                            int legacy, void* stream);
// db[o] = sum_{n, l} gy[n, o, l].
int gm_fm_bias_grad_gpu(int elem, const void* gy, int64_t N, int64_t O, int64_t L, void* db,
                        void* stream);
int gm_fm_zero_gpu(void* p, int64_t bytes, void* stream);

// ISqrtCov kernels (isqrtcov_kernels.cu), one image's matrices at a time; `elem` is 4 or 8.
// C (n x n) = its upper triangle mirrored into the lower one.
int gm_isc_mirror_gpu(int elem, void* C, int64_t n, void* stream);
// Xc = x minus the mean of each of its C rows of length M.
int gm_isc_center_gpu(int elem, const void* x, int64_t C, int64_t M, void* Xc, void* stream);
// out = a X + b (Q + Q^T) + c R + diag I (n x n; null X/Q/R count as 0; out may be X or R).
int gm_isc_combo_gpu(int elem, int64_t n, void* out, double a, const void* X, double b,
                     const void* Q, double c, const void* R, double diag, void* stream);
// *result (host) = sum_i a[i*stride] * (b ? b[i*stride] : 1) over count terms (synchronises).
int gm_isc_sum_gpu(int elem, const void* a, const void* b, int64_t count, int64_t stride,
                   double* result, void* stream);
// out[k] = S[index[k]] (k < K).
int gm_isc_gather_gpu(int elem, const void* S, const int32_t* index, int64_t K, void* out,
                      void* stream);
// G (n x n) = 0, then G[index[k]] += g[k] (atomic: repeated positions add up).
int gm_isc_scatter_gpu(int elem, const void* g, const int32_t* index, int64_t K, int64_t n,
                       void* G, void* stream);
// Copies `bytes` from the device to the host and waits for it (the default stream).
int gm_isc_to_host(void* dst, const void* src, int64_t bytes);
int gm_isc_copy_gpu(void* dst, const void* src, int64_t bytes, void* stream);

// GroupConv (groupconv_kernels.cu), `elem` 4 or 8. kind 0: b = conv(a = data, w); kind 1:
// b = grad_data from a = grad_out; kind 2: b = grad_weight from a = data, w = grad_out.
int gm_gc_pass_gpu(int elem, int kind, const gm_gc_geom* g, const void* a, const void* w, void* b,
                   void* stream);
}
