// CUDA kernels for max-pool (see csrc/common/pool_params.h for the scan and the gather form). No
// torch headers: only the c10 scalar types. One thread per output element (forward) or input
// element (backward), consecutive threads on consecutive addresses in either layout (along W for
// NCHW, along C for channels_last), flat indices decomposed by DivU32 below 2^31 elements.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

#include "../common/fastdiv.h"
#include "common.cuh"
#include "max_pool_cuda.h"

namespace atrous {
namespace cuda {
namespace {

template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

template <typename Div>
struct Dividers {
  Div c, w, h;  // channels and the spatial extents of the tensor whose elements are enumerated
  Dividers(int64_t channels, int64_t width, int64_t height) : c(channels), w(width), h(height) {}
};

// (n, c, y, x) of flat element i of an (N, C, height, width) tensor in `layout`.
template <typename Div>
__device__ __forceinline__ void decompose(typename Div::index_t i, const Dividers<Div>& dv,
                                          bool nhwc, int64_t* n, int64_t* c, int64_t* y,
                                          int64_t* x) {
  using I = typename Div::index_t;
  if (nhwc) {
    const I pix = dv.c.div(i), row = dv.w.div(pix), img = dv.h.div(row);
    *c = i - pix * I(dv.c.d);
    *x = pix - row * I(dv.w.d);
    *y = row - img * I(dv.h.d);
    *n = img;
  } else {
    const I row = dv.w.div(i), plane = dv.h.div(row), img = dv.c.div(plane);
    *x = i - row * I(dv.w.d);
    *y = row - plane * I(dv.h.d);
    *c = plane - img * I(dv.c.d);
    *n = img;
  }
}

template <typename T, typename Div>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(PoolParams p, Dividers<Div> dv, const T* __restrict__ in, T* __restrict__ out,
                   int64_t* __restrict__ idx) {
  using A = typename Acc<T>::type;
  using I = typename Div::index_t;
  const bool nhwc = p.layout == Layout::kNHWC;
  const int64_t C = p.channels, total = p.batch * C * p.out_h * p.out_w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, c, oh, ow;
    decompose(static_cast<I>(i), dv, nhwc, &n, &c, &oh, &ow);
    const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    int64_t kh0, kh1, kw0, kw1;
    pool_taps(h0, p.kernel_h, p.dil_h, p.in_h, &kh0, &kh1);
    pool_taps(w0, p.kernel_w, p.dil_w, p.in_w, &kw0, &kw1);
    const int64_t col = nhwc ? C : 1, row = p.in_w * col;
    const T* plane = in + (nhwc ? n * p.in_h * p.in_w * C + c : (n * C + c) * p.in_h * p.in_w);
    A m = -INFINITY;
    int64_t at = (h0 + kh0 * p.dil_h) * p.in_w + w0 + kw0 * p.dil_w;
    for (int64_t kh = kh0; kh < kh1; ++kh) {
      const int64_t ih = h0 + kh * p.dil_h;
      for (int64_t kw = kw0; kw < kw1; ++kw) {
        const int64_t iw = w0 + kw * p.dil_w;
        const A v = static_cast<A>(plane[ih * row + iw * col]);
        if (v > m || v != v) {
          m = v;
          at = ih * p.in_w + iw;
        }
      }
    }
    out[i] = static_cast<T>(m);
    if (p.with_indices) idx[i] = at;
  }
}

template <typename T, typename Div>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(PoolParams p, Dividers<Div> dv, const T* __restrict__ go,
                    const int64_t* __restrict__ idx, T* __restrict__ gi) {
  using A = typename Acc<T>::type;
  using I = typename Div::index_t;
  const bool nhwc = p.layout == Layout::kNHWC;
  const int64_t C = p.channels, total = p.batch * C * p.in_h * p.in_w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, c, ih, iw;
    decompose(static_cast<I>(i), dv, nhwc, &n, &c, &ih, &iw);
    const int64_t pos = ih * p.in_w + iw;
    const int64_t col = nhwc ? C : 1, row = p.out_w * col;
    const int64_t first = nhwc ? n * p.out_h * p.out_w * C + c : (n * C + c) * p.out_h * p.out_w;
    A acc = 0;
    // Windows in increasing output position: oh grows as kh falls, ow as kw falls.
    for (int64_t kh = p.kernel_h - 1; kh >= 0; --kh) {
      const int64_t th = ih + p.pad_h - kh * p.dil_h;
      if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= p.out_h) continue;
      const int64_t oh = th / p.stride_h;
      for (int64_t kw = p.kernel_w - 1; kw >= 0; --kw) {
        const int64_t tw = iw + p.pad_w - kw * p.dil_w;
        if (tw < 0 || tw % p.stride_w != 0 || tw / p.stride_w >= p.out_w) continue;
        const int64_t o = first + oh * row + (tw / p.stride_w) * col;
        if (idx[o] == pos) acc += static_cast<A>(go[o]);
      }
    }
    gi[i] = static_cast<T>(acc);
  }
}

// Calls f(Dividers) with 32-bit dividers when every flat index of `largest` elements fits.
template <typename F>
void with_dividers(int64_t largest, int64_t channels, int64_t width, int64_t height, F&& f) {
  if (fits_u32(largest)) {
    f(Dividers<DivU32>(channels, width, height));
  } else {
    f(Dividers<DivI64>(channels, width, height));
  }
}

}  // namespace

template <typename T>
cudaError_t max_pool_forward(const PoolParams& p, const T* input, T* output, int64_t* indices,
                             cudaStream_t stream) {
  const int64_t total = p.batch * p.channels * p.out_h * p.out_w;
  const int64_t largest = std::max(total, p.batch * p.channels * p.in_h * p.in_w);
  with_dividers(largest, p.channels, p.out_w, p.out_h, [&](auto dv) {
    forward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(p, dv, input, output, indices);
  });
  return cudaGetLastError();
}

template <typename T>
cudaError_t max_pool_backward(const PoolParams& p, const T* grad_output, const int64_t* indices,
                              T* grad_input, cudaStream_t stream) {
  const int64_t total = p.batch * p.channels * p.in_h * p.in_w;
  const int64_t largest = std::max(total, p.batch * p.channels * p.out_h * p.out_w);
  with_dividers(largest, p.channels, p.in_w, p.in_h, [&](auto dv) {
    backward_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(p, dv, grad_output, indices,
                                                                 grad_input);
  });
  return cudaGetLastError();
}

#define ATROUS_INSTANTIATE(T)                                                                   \
  template cudaError_t max_pool_forward<T>(const PoolParams&, const T*, T*, int64_t*,          \
                                           cudaStream_t);                                        \
  template cudaError_t max_pool_backward<T>(const PoolParams&, const T*, const int64_t*, T*,   \
                                            cudaStream_t);

ATROUS_INSTANTIATE(float)
ATROUS_INSTANTIATE(double)
ATROUS_INSTANTIATE(c10::Half)
ATROUS_INSTANTIATE(c10::BFloat16)
#undef ATROUS_INSTANTIATE

}  // namespace cuda
}  // namespace atrous
