// CUDA kernels for max-unpool (see csrc/common/unpool_params.h for the two forms). No torch
// headers: only the c10 scalar types.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

#include "../common/fastdiv.h"
#include "common.cuh"
#include "max_unpool_cuda.h"

namespace atrous {
namespace cuda {
namespace {

// Dividers for the flat index decompositions (DivU32 when every index is below 2^31).
template <typename Div>
struct Dividers {
  Div c, out_w, out_h, plane_in, stride_h, stride_w;
  explicit Dividers(const UnpoolParams& p)
      : c(p.channels), out_w(p.out_w), out_h(p.out_h), plane_in(p.in_h * p.in_w),
        stride_h(p.stride_h), stride_w(p.stride_w) {}
};

// Window along one axis whose region holds output position o (o + pad >= 0).
template <typename Div>
__device__ __forceinline__ int64_t window_of(int64_t o, const Div& stride, int64_t pad, int64_t n) {
  const int64_t i = static_cast<int64_t>(stride.div(static_cast<typename Div::index_t>(o + pad)));
  return i >= n ? n - 1 : i;
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
template <typename T, typename Div>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(UnpoolParams p, Dividers<Div> dv, const T* __restrict__ in,
                  const int64_t* __restrict__ idx, T* __restrict__ out, unsigned long long* flags) {
  using I = typename Div::index_t;
  const bool nhwc = p.layout == Layout::kNHWC;
  const int64_t C = p.channels, plane_out = p.out_h * p.out_w;
  const int64_t total = p.batch * C * plane_out;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const I ii = static_cast<I>(i);
    int64_t n, c, r, q;
    if (nhwc) {
      const I pix = dv.c.div(ii);
      const I row = dv.out_w.div(pix);
      const I img = dv.out_h.div(row);
      c = ii - pix * I(C);
      q = pix - row * I(p.out_w);
      r = row - img * I(p.out_h);
      n = img;
    } else {
      const I row = dv.out_w.div(ii);
      const I pl = dv.out_h.div(row);
      const I img = dv.c.div(pl);
      q = ii - row * I(p.out_w);
      r = row - pl * I(p.out_h);
      c = pl - img * I(C);
      n = img;
    }
    const int64_t h = window_of(r, dv.stride_h, p.pad_h, p.in_h);
    const int64_t w = window_of(q, dv.stride_w, p.pad_w, p.in_w);
    const int64_t j = nhwc ? ((n * p.in_h + h) * p.in_w + w) * C + c
                           : ((n * C + c) * p.in_h + h) * p.in_w + w;
    const int64_t t = idx[j];
    out[i] = t == r * p.out_w + q ? in[j] : T(0);
    if (r == region_start(h, p.stride_h, p.pad_h) && q == region_start(w, p.stride_w, p.pad_w)) {
      if (t < 0 || t >= plane_out) {
        report_bad(flags, ((n * C + c) * p.in_h + h) * p.in_w + w);
      } else {
        const int64_t tr = static_cast<int64_t>(dv.out_w.div(static_cast<I>(t)));
        if (!unpool_in_window(tr, t - tr * p.out_w, h, w, p)) atomicExch(flags + 1, 0ull);
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

template <typename Div>
__device__ __forceinline__ Target target_of(const UnpoolParams& p, const Dividers<Div>& dv,
                                            int64_t j, int64_t t) {
  using I = typename Div::index_t;
  const int64_t C = p.channels, plane_in = p.in_h * p.in_w, plane_out = p.out_h * p.out_w;
  const I jj = static_cast<I>(j);
  int64_t n, c, pos;
  if (p.layout == Layout::kNHWC) {
    const I a = dv.c.div(jj);  // n * plane_in + pos
    const I img = dv.plane_in.div(a);
    c = jj - a * I(C);
    pos = a - img * I(plane_in);
    n = img;
  } else {
    const I a = dv.plane_in.div(jj);  // n * C + c
    const I img = dv.c.div(a);
    pos = jj - a * I(plane_in);
    c = a - img * I(C);
    n = img;
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
template <typename Div>
__global__ void __launch_bounds__(kThreads)
    claim_kernel(UnpoolParams p, Dividers<Div> dv, const int64_t* __restrict__ idx,
                 unsigned int* __restrict__ winner, unsigned long long* flags, bool only_if_fallback) {
  if (only_if_fallback && flags[1] != 0) return;
  const int64_t total = p.batch * p.channels * p.in_h * p.in_w;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total;
       j += int64_t(gridDim.x) * blockDim.x) {
    const Target tg = target_of(p, dv, j, idx[j]);
    if (tg.slot < 0) {
      report_bad(flags, tg.logical);
    } else {
      atomicMax(winner + tg.slot, static_cast<unsigned int>(tg.rank));
    }
  }
}

// Scatter, second pass: each slot's winner writes its value.
template <typename T, typename Div>
__global__ void __launch_bounds__(kThreads)
    write_kernel(UnpoolParams p, Dividers<Div> dv, const T* __restrict__ in,
                 const int64_t* __restrict__ idx, const unsigned int* __restrict__ winner,
                 T* __restrict__ out, const unsigned long long* flags, bool only_if_fallback) {
  if (only_if_fallback && flags[1] != 0) return;
  const int64_t total = p.batch * p.channels * p.in_h * p.in_w;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total;
       j += int64_t(gridDim.x) * blockDim.x) {
    const Target tg = target_of(p, dv, j, idx[j]);
    if (tg.slot >= 0 && winner[tg.slot] == static_cast<unsigned int>(tg.rank)) out[tg.slot] = in[j];
  }
}

template <typename T, typename Div>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(UnpoolParams p, Dividers<Div> dv, const T* __restrict__ go,
                    const int64_t* __restrict__ idx, T* __restrict__ gi) {
  const int64_t total = p.batch * p.channels * p.in_h * p.in_w;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total;
       j += int64_t(gridDim.x) * blockDim.x) {
    const Target tg = target_of(p, dv, j, idx[j]);
    gi[j] = tg.slot >= 0 ? go[tg.slot] : T(0);
  }
}

// Runs f(Dividers<DivU32>) when every flat index of the op fits 31 bits, else f(Dividers<DivI64>).
template <typename F>
void with_dividers(const UnpoolParams& p, F&& f) {
  const int64_t in = p.batch * p.channels * p.in_h * p.in_w;
  const int64_t out = p.batch * p.channels * p.out_h * p.out_w;
  if (fits_u32(in > out ? in : out)) {
    f(Dividers<DivU32>(p));
  } else {
    f(Dividers<DivI64>(p));
  }
}

}  // namespace

template <typename T>
cudaError_t unpool_gather(const UnpoolParams& p, const T* input, const int64_t* indices, T* output,
                          unsigned long long* flags, cudaStream_t stream) {
  const int64_t total = p.batch * p.channels * p.out_h * p.out_w;
  with_dividers(p, [&](auto dv) {
    gather_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(p, dv, input, indices, output, flags);
  });
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
  with_dividers(p, [&](auto dv) {
    claim_kernel<<<grid(n_in), kThreads, 0, stream>>>(p, dv, indices, winner, flags, only_if_fallback);
    write_kernel<T><<<grid(n_in), kThreads, 0, stream>>>(p, dv, input, indices, winner, output, flags,
                                                         only_if_fallback);
  });
  return cudaGetLastError();
}

template <typename T>
cudaError_t unpool_backward(const UnpoolParams& p, const T* grad_output, const int64_t* indices,
                            T* grad_input, cudaStream_t stream) {
  const int64_t n_in = p.batch * p.channels * p.in_h * p.in_w;
  with_dividers(p, [&](auto dv) {
    backward_kernel<T><<<grid_for(n_in), kThreads, 0, stream>>>(p, dv, grad_output, indices, grad_input);
  });
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
