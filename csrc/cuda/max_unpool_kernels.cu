// CUDA kernels for max-unpool (see csrc/common/unpool_params.h for the two forms). No torch
// headers: only the c10 scalar types.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

#include "max_unpool_cuda.h"

namespace atrous {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGrid = 1 << 30;

inline unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(ceil_div(n, kThreads), kMaxGrid)));
}

__device__ __forceinline__ int64_t window_of(int64_t o, int64_t stride, int64_t pad, int64_t n) {
  const int64_t i = floor_div(o + pad, stride);
  return i < 0 ? 0 : (i >= n ? n - 1 : i);
}

__device__ __forceinline__ int64_t region_start(int64_t i, int64_t stride, int64_t pad) {
  return i == 0 ? 0 : i * stride - pad;
}

__device__ __forceinline__ void report_bad(unsigned long long* flags, int64_t logical) {
  atomicMin(flags, static_cast<unsigned long long>(logical));
}

// One thread per output element: reads its window's value and index (shared by the region's
// threads through the cache) and writes the element once. The thread at the first position of
// each region checks that region's window index: out of range, or in range but outside the window.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(UnpoolParams p, const T* __restrict__ in, const int64_t* __restrict__ idx,
                  T* __restrict__ out, unsigned long long* flags) {
  const bool nhwc = p.layout == Layout::kNHWC;
  const int64_t C = p.channels, plane_out = p.out_h * p.out_w;
  const int64_t total = p.batch * C * plane_out;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, c, r, q;
    if (nhwc) {
      c = i % C;
      const int64_t pix = i / C;
      q = pix % p.out_w;
      r = (pix / p.out_w) % p.out_h;
      n = pix / plane_out;
    } else {
      q = i % p.out_w;
      r = (i / p.out_w) % p.out_h;
      c = (i / plane_out) % C;
      n = i / (plane_out * C);
    }
    const int64_t h = window_of(r, p.stride_h, p.pad_h, p.in_h);
    const int64_t w = window_of(q, p.stride_w, p.pad_w, p.in_w);
    const int64_t j = nhwc ? ((n * p.in_h + h) * p.in_w + w) * C + c
                           : ((n * C + c) * p.in_h + h) * p.in_w + w;
    const int64_t t = idx[j];
    out[i] = t == r * p.out_w + q ? in[j] : T(0);
    if (r == region_start(h, p.stride_h, p.pad_h) && q == region_start(w, p.stride_w, p.pad_w)) {
      if (t < 0 || t >= plane_out) {
        report_bad(flags, ((n * C + c) * p.in_h + h) * p.in_w + w);
      } else if (!unpool_in_window(t / p.out_w, t % p.out_w, h, w, p)) {
        atomicExch(flags + 1, 0ull);
      }
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    zero_kernel(int64_t n_out, T* __restrict__ out, int64_t n_win, unsigned int* __restrict__ winner,
                const unsigned long long* flags, bool only_if_fallback) {
  if (only_if_fallback && flags[1] != 0) return;
  const int64_t n = n_out > n_win ? n_out : n_win;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if (i < n_out) out[i] = T(0);
    if (i < n_win) winner[i] = 0;
  }
}

// Position of input element j: (output slot of its index, its position in the plane + 1,
// its logical position), or slot -1 when the index is out of range.
struct Target {
  int64_t slot, rank, logical;
};

__device__ __forceinline__ Target target_of(const UnpoolParams& p, int64_t j, int64_t t) {
  const int64_t C = p.channels, plane_in = p.in_h * p.in_w, plane_out = p.out_h * p.out_w;
  int64_t n, c, pos;
  if (p.layout == Layout::kNHWC) {
    c = j % C;
    pos = (j / C) % plane_in;
    n = j / (C * plane_in);
  } else {
    pos = j % plane_in;
    c = (j / plane_in) % C;
    n = j / (plane_in * C);
  }
  Target tg;
  tg.rank = pos + 1;
  tg.logical = (n * C + c) * plane_in + pos;
  if (t < 0 || t >= plane_out) {
    tg.slot = -1;
  } else {
    tg.slot = p.layout == Layout::kNHWC ? (n * plane_out + t) * C + c : (n * C + c) * plane_out + t;
  }
  return tg;
}

// Scatter, first pass: the latest input (largest rank) of each output slot claims it.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    claim_kernel(UnpoolParams p, const int64_t* __restrict__ idx, unsigned int* __restrict__ winner,
                 unsigned long long* flags, bool only_if_fallback) {
  if (only_if_fallback && flags[1] != 0) return;
  const int64_t total = p.batch * p.channels * p.in_h * p.in_w;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total;
       j += int64_t(gridDim.x) * blockDim.x) {
    const Target tg = target_of(p, j, idx[j]);
    if (tg.slot < 0) {
      report_bad(flags, tg.logical);
    } else {
      atomicMax(winner + tg.slot, static_cast<unsigned int>(tg.rank));
    }
  }
}

// Scatter, second pass: each slot's winner writes its value.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    write_kernel(UnpoolParams p, const T* __restrict__ in, const int64_t* __restrict__ idx,
                 const unsigned int* __restrict__ winner, T* __restrict__ out,
                 const unsigned long long* flags, bool only_if_fallback) {
  if (only_if_fallback && flags[1] != 0) return;
  const int64_t total = p.batch * p.channels * p.in_h * p.in_w;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total;
       j += int64_t(gridDim.x) * blockDim.x) {
    const Target tg = target_of(p, j, idx[j]);
    if (tg.slot >= 0 && winner[tg.slot] == static_cast<unsigned int>(tg.rank)) out[tg.slot] = in[j];
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(UnpoolParams p, const T* __restrict__ go, const int64_t* __restrict__ idx,
                    T* __restrict__ gi) {
  const int64_t total = p.batch * p.channels * p.in_h * p.in_w;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total;
       j += int64_t(gridDim.x) * blockDim.x) {
    const Target tg = target_of(p, j, idx[j]);
    gi[j] = tg.slot >= 0 ? go[tg.slot] : T(0);
  }
}

}  // namespace

template <typename T>
cudaError_t unpool_gather(const UnpoolParams& p, const T* input, const int64_t* indices, T* output,
                          unsigned long long* flags, cudaStream_t stream) {
  const int64_t total = p.batch * p.channels * p.out_h * p.out_w;
  gather_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(p, input, indices, output, flags);
  return cudaGetLastError();
}

template <typename T>
cudaError_t unpool_scatter(const UnpoolParams& p, const T* input, const int64_t* indices, T* output,
                           unsigned int* winner, unsigned long long* flags, bool only_if_fallback,
                           cudaStream_t stream) {
  const int64_t n_out = p.batch * p.channels * p.out_h * p.out_w;
  const int64_t n_in = p.batch * p.channels * p.in_h * p.in_w;
  // When the scatter only may be needed, small grids keep the no-op launches cheap.
  auto grid = [&](int64_t n) { return only_if_fallback ? std::min(grid_for(n), 1024u) : grid_for(n); };
  zero_kernel<T><<<grid(n_out), kThreads, 0, stream>>>(n_out, output, n_out, winner, flags,
                                                       only_if_fallback);
  claim_kernel<T><<<grid(n_in), kThreads, 0, stream>>>(p, indices, winner, flags, only_if_fallback);
  write_kernel<T><<<grid(n_in), kThreads, 0, stream>>>(p, input, indices, winner, output, flags,
                                                       only_if_fallback);
  return cudaGetLastError();
}

template <typename T>
cudaError_t unpool_backward(const UnpoolParams& p, const T* grad_output, const int64_t* indices,
                            T* grad_input, cudaStream_t stream) {
  const int64_t n_in = p.batch * p.channels * p.in_h * p.in_w;
  backward_kernel<T><<<grid_for(n_in), kThreads, 0, stream>>>(p, grad_output, indices, grad_input);
  return cudaGetLastError();
}

#define ATROUS_INSTANTIATE(T)                                                                     \
  template cudaError_t unpool_gather<T>(const UnpoolParams&, const T*, const int64_t*, T*,         \
                                        unsigned long long*, cudaStream_t);                        \
  template cudaError_t unpool_scatter<T>(const UnpoolParams&, const T*, const int64_t*, T*,        \
                                         unsigned int*, unsigned long long*, bool, cudaStream_t);  \
  template cudaError_t unpool_backward<T>(const UnpoolParams&, const T*, const int64_t*, T*,       \
                                          cudaStream_t);

ATROUS_INSTANTIATE(float)
ATROUS_INSTANTIATE(double)
ATROUS_INSTANTIATE(c10::Half)
ATROUS_INSTANTIATE(c10::BFloat16)
#undef ATROUS_INSTANTIATE

}  // namespace cuda
}  // namespace atrous
