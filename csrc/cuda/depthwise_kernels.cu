// CUDA kernels for the depthwise convolution. No torch headers: only the c10 scalar types, so this
// file compiles in seconds. Accumulation is in float (double for double inputs).
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../common/fastdiv.h"
#include "depthwise_cuda.h"

namespace atrous {
namespace cuda {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

constexpr int kThreads = 256;
constexpr int kMaxRowsPerThread = 4;
constexpr int64_t kMaxGrid = 1 << 30;

template <typename T>
__device__ __forceinline__ acc_t<T> load(const T* p) {
  return static_cast<acc_t<T>>(__ldg(reinterpret_cast<const T*>(p)));
}
template <>
__device__ __forceinline__ float load<c10::Half>(const c10::Half* p) {
  return static_cast<float>(*p);
}
template <>
__device__ __forceinline__ float load<c10::BFloat16>(const c10::BFloat16* p) {
  return static_cast<float>(*p);
}

inline unsigned grid_for(int64_t blocks) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, kMaxGrid)));
}

// ----------------------------------------------------------------------------------------------
// Forward, NCHW: one block computes a TW x (blockDim.y * rpt) tile of one output plane from an
// input tile (with its halo) staged in shared memory as acc_t, with the plane's taps.
// ----------------------------------------------------------------------------------------------
struct Tile {
  int tw, rpt, th;        // output tile width, rows per thread, tile height
  int in_tw, in_th;       // input tile extent
  int64_t tiles_w, tiles_h;
  size_t smem_bytes;
};

template <typename T>
Tile make_tile(const DepthwiseParams& p) {
  Tile t;
  t.tw = p.out_w <= 8 ? 8 : (p.out_w <= 16 ? 16 : 32);
  const int ty = kThreads / t.tw;
  t.rpt = static_cast<int>(std::min<int64_t>(kMaxRowsPerThread, std::max<int64_t>(1, (p.out_h + ty - 1) / ty)));
  t.th = ty * t.rpt;
  const int64_t in_tw = (t.tw - 1) * p.stride_w + (p.kernel_w - 1) * p.dil_w + 1;
  const int64_t in_th = (t.th - 1) * p.stride_h + (p.kernel_h - 1) * p.dil_h + 1;
  t.tiles_w = ceil_div(p.out_w, t.tw);
  t.tiles_h = ceil_div(p.out_h, t.th);
  const int64_t elems = in_tw * in_th + p.kernel_h * p.kernel_w;
  // Tiles beyond the default 48 KiB of shared memory go to the direct kernel.
  t.smem_bytes = elems * sizeof(acc_t<T>) <= 48 * 1024 ? elems * sizeof(acc_t<T>) : 0;
  t.in_tw = static_cast<int>(std::min<int64_t>(in_tw, 1 << 30));
  t.in_th = static_cast<int>(std::min<int64_t>(in_th, 1 << 30));
  return t;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_nchw_tiled(DepthwiseParams p, Tile t, const T* __restrict__ in,
                       const T* __restrict__ w, const T* __restrict__ bias, T* __restrict__ out) {
  using A = acc_t<T>;
  extern __shared__ unsigned char smem_raw[];
  A* s_in = reinterpret_cast<A*>(smem_raw);
  A* s_w = s_in + t.in_tw * t.in_th;
  const int taps = static_cast<int>(p.kernel_h * p.kernel_w);
  const int64_t tiles = t.tiles_w * t.tiles_h;
  const int64_t total = p.batch * p.out_channels * tiles;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  for (int64_t b = blockIdx.x; b < total; b += gridDim.x) {
    const int64_t plane = b / tiles;
    const int64_t tile = b % tiles;
    const int64_t oh0 = (tile / t.tiles_w) * t.th;
    const int64_t ow0 = (tile % t.tiles_w) * t.tw;
    const int64_t n = plane / p.out_channels, co = plane % p.out_channels;
    const T* in_plane = in + (n * p.channels + co / p.mult) * p.in_h * p.in_w;
    const int64_t ih0 = oh0 * p.stride_h - p.pad_h;
    const int64_t iw0 = ow0 * p.stride_w - p.pad_w;
    __syncthreads();  // the previous tile's readers are done
    for (int i = tid; i < t.in_tw * t.in_th; i += kThreads) {
      const int64_t ih = ih0 + i / t.in_tw, iw = iw0 + i % t.in_tw;
      s_in[i] = (ih >= 0 && ih < p.in_h && iw >= 0 && iw < p.in_w) ? load(in_plane + ih * p.in_w + iw)
                                                                    : A(0);
    }
    for (int i = tid; i < taps; i += kThreads) s_w[i] = load(w + co * taps + i);
    __syncthreads();
    const A b0 = bias ? load(bias + co) : A(0);
    A acc[kMaxRowsPerThread];
#pragma unroll
    for (int r = 0; r < kMaxRowsPerThread; ++r) acc[r] = b0;
    const int x = threadIdx.x;
    for (int kh = 0; kh < p.kernel_h; ++kh) {
      for (int kw = 0; kw < p.kernel_w; ++kw) {
        const A wv = s_w[kh * p.kernel_w + kw];
        const A* src = s_in + (kh * p.dil_h) * t.in_tw + x * p.stride_w + kw * p.dil_w;
#pragma unroll
        for (int r = 0; r < kMaxRowsPerThread; ++r) {
          if (r < t.rpt) {
            const int y = threadIdx.y + r * blockDim.y;
            acc[r] += wv * src[y * p.stride_h * t.in_tw];
          }
        }
      }
    }
    const int64_t ow = ow0 + x;
#pragma unroll
    for (int r = 0; r < kMaxRowsPerThread; ++r) {
      const int64_t oh = oh0 + threadIdx.y + r * blockDim.y;
      if (r < t.rpt && oh < p.out_h && ow < p.out_w)
        out[(plane * p.out_h + oh) * p.out_w + ow] = static_cast<T>(acc[r]);
    }
  }
}

// Forward, NCHW, for windows too large to stage: one thread per output, loads through the
// read-only cache.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_nchw_direct(DepthwiseParams p, const T* __restrict__ in, const T* __restrict__ w,
                        const T* __restrict__ bias, T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t total = p.batch * p.out_channels * p.out_h * p.out_w;
  const int64_t taps = p.kernel_h * p.kernel_w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = i % p.out_w;
    const int64_t oh = (i / p.out_w) % p.out_h;
    const int64_t plane = i / (p.out_w * p.out_h);
    const int64_t n = plane / p.out_channels, co = plane % p.out_channels;
    const T* in_plane = in + (n * p.channels + co / p.mult) * p.in_h * p.in_w;
    A acc = bias ? load(bias + co) : A(0);
    for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
      const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
      if (ih < 0 || ih >= p.in_h) continue;
      for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
        const int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
        if (iw < 0 || iw >= p.in_w) continue;
        acc += load(w + co * taps + kh * p.kernel_w + kw) * load(in_plane + ih * p.in_w + iw);
      }
    }
    out[i] = static_cast<T>(acc);
  }
}

// Forward, NHWC: one thread per output element, channels fastest, so a warp reads consecutive
// channels of one pixel (coalesced); the transposed weight [tap][Co] is coalesced the same way.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_nhwc(DepthwiseParams p, const T* __restrict__ in, const T* __restrict__ wt,
                 const T* __restrict__ bias, T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t Co = p.out_channels;
  const int64_t total = p.batch * p.out_h * p.out_w * Co;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t co = i % Co;
    const int64_t pix = i / Co;
    const int64_t ow = pix % p.out_w;
    const int64_t oh = (pix / p.out_w) % p.out_h;
    const int64_t n = pix / (p.out_w * p.out_h);
    const T* in_n = in + n * p.in_h * p.in_w * p.channels + co / p.mult;
    A acc = bias ? load(bias + co) : A(0);
    for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
      const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
      if (ih < 0 || ih >= p.in_h) continue;
      for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
        const int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
        if (iw < 0 || iw >= p.in_w) continue;
        acc += load(wt + (kh * p.kernel_w + kw) * Co + co) *
               load(in_n + (ih * p.in_w + iw) * p.channels);
      }
    }
    out[i] = static_cast<T>(acc);
  }
}

// Forward, NHWC, vectorised: one thread per (output pixel, group of VEC channels), reading 16
// bytes of input and of the transposed weight per tap, so a warp moves whole cache lines. For one
// output channel per input channel, channel counts divisible by VEC and 16-byte aligned tensors
// below 2^31 elements (the launcher checks; forward_nhwc takes the rest). `bias` may be null.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T v[VEC];
};

template <typename T>
constexpr int kVec = 16 / sizeof(T);

template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_nhwc_vec(DepthwiseParams p, DivU32 div_groups, DivU32 div_ow, DivU32 div_oh,
                     const T* __restrict__ in, const T* __restrict__ wt,
                     const T* __restrict__ bias, T* __restrict__ out) {
  using A = acc_t<T>;
  constexpr int V = kVec<T>;
  using VT = Vec<T, V>;
  const uint32_t C = static_cast<uint32_t>(p.channels);
  const uint32_t groups = C / V;
  const int64_t total = p.batch * p.out_h * p.out_w * groups;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint32_t ii = static_cast<uint32_t>(i);
    const uint32_t pix = div_groups.div(ii);
    const uint32_t row = div_ow.div(pix);
    const uint32_t n = div_oh.div(row);
    const uint32_t c0 = (ii - pix * groups) * V;
    const int ow = static_cast<int>(pix - row * static_cast<uint32_t>(p.out_w));
    const int oh = static_cast<int>(row - n * static_cast<uint32_t>(p.out_h));
    A acc[V];
    if (bias != nullptr) {
      const VT b = *reinterpret_cast<const VT*>(bias + c0);
#pragma unroll
      for (int v = 0; v < V; ++v) acc[v] = static_cast<A>(b.v[v]);
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v) acc[v] = A(0);
    }
    const int in_h = static_cast<int>(p.in_h), in_w = static_cast<int>(p.in_w);
    const int ih0 = oh * static_cast<int>(p.stride_h) - static_cast<int>(p.pad_h);
    const int iw0 = ow * static_cast<int>(p.stride_w) - static_cast<int>(p.pad_w);
    const T* in_n = in + static_cast<uint32_t>(n * static_cast<uint32_t>(in_h * in_w)) * C + c0;
    const int kh_n = static_cast<int>(p.kernel_h), kw_n = static_cast<int>(p.kernel_w);
    for (int kh = 0; kh < kh_n; ++kh) {
      const int ih = ih0 + kh * static_cast<int>(p.dil_h);
      if (ih < 0 || ih >= in_h) continue;
      const T* in_row = in_n + static_cast<uint32_t>(ih * in_w) * C;
      const T* w_row = wt + static_cast<uint32_t>(kh * kw_n) * C + c0;
      for (int kw = 0; kw < kw_n; ++kw) {
        const int iw = iw0 + kw * static_cast<int>(p.dil_w);
        if (iw < 0 || iw >= in_w) continue;
        const VT x = *reinterpret_cast<const VT*>(in_row + static_cast<uint32_t>(iw) * C);
        const VT w = *reinterpret_cast<const VT*>(w_row + static_cast<uint32_t>(kw) * C);
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] += static_cast<A>(w.v[v]) * static_cast<A>(x.v[v]);
      }
    }
    VT o;
#pragma unroll
    for (int v = 0; v < V; ++v) o.v[v] = static_cast<T>(acc[v]);
    *reinterpret_cast<VT*>(out + pix * C + c0) = o;
  }
}

inline bool aligned16(const void* ptr) { return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Output index along one axis reached from input index `i` by tap `k`, or -1.
__device__ __forceinline__ int64_t source_of(int64_t i, int64_t k, int64_t pad, int64_t dil,
                                             int64_t stride, int64_t out) {
  const int64_t t = i + pad - k * dil;
  if (t < 0 || t % stride != 0) return -1;
  const int64_t o = t / stride;
  return o < out ? o : -1;
}

// grad_input, NCHW: one thread per input element gathers from the outputs its taps reach, so
// every element is written once, without atomics.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_input_nchw(DepthwiseParams p, const T* __restrict__ go, const T* __restrict__ w,
                        T* __restrict__ gi) {
  using A = acc_t<T>;
  const int64_t total = p.batch * p.channels * p.in_h * p.in_w;
  const int64_t taps = p.kernel_h * p.kernel_w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t iw = i % p.in_w;
    const int64_t ih = (i / p.in_w) % p.in_h;
    const int64_t plane = i / (p.in_w * p.in_h);
    const int64_t n = plane / p.channels, c = plane % p.channels;
    A acc = 0;
    for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
      const int64_t oh = source_of(ih, kh, p.pad_h, p.dil_h, p.stride_h, p.out_h);
      if (oh < 0) continue;
      for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
        const int64_t ow = source_of(iw, kw, p.pad_w, p.dil_w, p.stride_w, p.out_w);
        if (ow < 0) continue;
        for (int64_t j = 0; j < p.mult; ++j) {
          const int64_t co = c * p.mult + j;
          acc += load(w + co * taps + kh * p.kernel_w + kw) *
                 load(go + ((n * p.out_channels + co) * p.out_h + oh) * p.out_w + ow);
        }
      }
    }
    gi[i] = static_cast<T>(acc);
  }
}

// grad_input, NHWC: as above with channels fastest.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_input_nhwc(DepthwiseParams p, const T* __restrict__ go, const T* __restrict__ wt,
                        T* __restrict__ gi) {
  using A = acc_t<T>;
  const int64_t C = p.channels, Co = p.out_channels;
  const int64_t total = p.batch * p.in_h * p.in_w * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % C;
    const int64_t pix = i / C;
    const int64_t iw = pix % p.in_w;
    const int64_t ih = (pix / p.in_w) % p.in_h;
    const int64_t n = pix / (p.in_w * p.in_h);
    A acc = 0;
    for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
      const int64_t oh = source_of(ih, kh, p.pad_h, p.dil_h, p.stride_h, p.out_h);
      if (oh < 0) continue;
      for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
        const int64_t ow = source_of(iw, kw, p.pad_w, p.dil_w, p.stride_w, p.out_w);
        if (ow < 0) continue;
        const T* g = go + ((n * p.out_h + oh) * p.out_w + ow) * Co + c * p.mult;
        const T* wv = wt + (kh * p.kernel_w + kw) * Co + c * p.mult;
        for (int64_t j = 0; j < p.mult; ++j) acc += load(wv + j) * load(g + j);
      }
    }
    gi[i] = static_cast<T>(acc);
  }
}

// Sums `v` over the block in a fixed order (warp shuffles, then the warps' sums in order).
template <typename A>
__device__ A block_sum(A v, A* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  const int warps = (blockDim.x * blockDim.y) / 32;
  if (tid % 32 == 0) scratch[tid / 32] = v;
  __syncthreads();
  A s = 0;
  if (tid == 0)
    for (int i = 0; i < warps; ++i) s += scratch[i];
  __syncthreads();
  return s;  // valid in thread 0
}

// grad_weight, NCHW, first pass: block (tap, co, split) sums go * x over its slice of positions.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_weight_nchw_partial(DepthwiseParams p, int64_t splits, const T* __restrict__ go,
                                 const T* __restrict__ in, acc_t<T>* __restrict__ partial) {
  using A = acc_t<T>;
  __shared__ A scratch[kThreads / 32];
  const int64_t taps = p.kernel_h * p.kernel_w;
  const int64_t positions = p.batch * p.out_h * p.out_w;
  const int64_t per = ceil_div(positions, splits);
  const int64_t total = taps * p.out_channels * splits;
  for (int64_t b = blockIdx.x; b < total; b += gridDim.x) {
    const int64_t tap = b % taps;
    const int64_t co = (b / taps) % p.out_channels;
    const int64_t split = b / (taps * p.out_channels);
    const int64_t kh = tap / p.kernel_w, kw = tap % p.kernel_w;
    const int64_t c = co / p.mult;
    const int64_t q1 = (split + 1) * per < positions ? (split + 1) * per : positions;
    A acc = 0;
    for (int64_t q = split * per + threadIdx.x; q < q1; q += blockDim.x) {
      const int64_t ow = q % p.out_w;
      const int64_t oh = (q / p.out_w) % p.out_h;
      const int64_t n = q / (p.out_w * p.out_h);
      const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
      const int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
      if (ih < 0 || ih >= p.in_h || iw < 0 || iw >= p.in_w) continue;
      acc += load(go + ((n * p.out_channels + co) * p.out_h + oh) * p.out_w + ow) *
             load(in + ((n * p.channels + c) * p.in_h + ih) * p.in_w + iw);
    }
    const A s = block_sum(acc, scratch);
    if (threadIdx.x == 0) partial[(co * taps + tap) * splits + split] = s;
  }
}

// grad_weight, NHWC, first pass: block (32 channels x 8 position lanes) for (tap, channel group,
// split); reads of go and x are coalesced over channels.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_weight_nhwc_partial(DepthwiseParams p, int64_t splits, const T* __restrict__ go,
                                 const T* __restrict__ in, acc_t<T>* __restrict__ partial) {
  using A = acc_t<T>;
  __shared__ A scratch[8][33];
  const int64_t taps = p.kernel_h * p.kernel_w;
  const int64_t Co = p.out_channels;
  const int64_t groups = ceil_div(Co, 32);
  const int64_t positions = p.batch * p.out_h * p.out_w;
  const int64_t per = ceil_div(positions, splits);
  const int64_t total = taps * groups * splits;
  for (int64_t b = blockIdx.x; b < total; b += gridDim.x) {
    const int64_t tap = b % taps;
    const int64_t g = (b / taps) % groups;
    const int64_t split = b / (taps * groups);
    const int64_t kh = tap / p.kernel_w, kw = tap % p.kernel_w;
    const int64_t co = g * 32 + threadIdx.x;
    const int64_t q1 = (split + 1) * per < positions ? (split + 1) * per : positions;
    A acc = 0;
    if (co < Co) {
      const int64_t c = co / p.mult;
      for (int64_t q = split * per + threadIdx.y; q < q1; q += blockDim.y) {
        const int64_t ow = q % p.out_w;
        const int64_t oh = (q / p.out_w) % p.out_h;
        const int64_t n = q / (p.out_w * p.out_h);
        const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
        const int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
        if (ih < 0 || ih >= p.in_h || iw < 0 || iw >= p.in_w) continue;
        acc += load(go + q * Co + co) *
               load(in + ((n * p.in_h + ih) * p.in_w + iw) * p.channels + c);
      }
    }
    __syncthreads();
    scratch[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && co < Co) {
      A s = 0;
      for (int r = 0; r < 8; ++r) s += scratch[r][threadIdx.x];
      partial[(co * taps + tap) * splits + split] = s;
    }
  }
}

// grad_weight for kernels up to KW columns wide (KW a compile-time bound, kernel_w at run time):
// each block takes one output channel (NCHW) or 32 of them (NHWC), a chunk of up to ROWS kernel
// rows, and a fixed slice of the N * oH * oW output positions; every thread keeps the chunk's
// ROWS x KW sums in registers, so grad_output is read once per chunk rather than once per tap.
// The block's sums are reduced in a fixed order and written as one split's partials.
struct WeightGrid {
  int64_t chunks;     // ceil(kernel_h / ROWS)
  int64_t per_split;  // output positions per split
  int64_t splits;
};

template <int ROWS>
WeightGrid weight_grid(const DepthwiseParams& p, int64_t channel_blocks) {
  WeightGrid g;
  g.chunks = ceil_div(p.kernel_h, ROWS);
  const int64_t positions = p.batch * p.out_h * p.out_w;
  // About 2048 blocks in all, none with fewer than 512 positions; a function of the shape only,
  // so every run reduces in the same order.
  const int64_t want = ceil_div(2048, channel_blocks * g.chunks);
  g.splits = std::max<int64_t>(1, std::min<int64_t>(want, positions / 512));
  g.per_split = ceil_div(positions, g.splits);
  return g;
}

// The chunk's sums of one thread, reduced over the block in a fixed order (warp shuffles, then
// the warps in order) and written by the first ROWS * KW threads.
template <typename A, int KW, int ROWS>
__device__ void reduce_chunk_nchw(A (&acc)[ROWS][KW], A* scratch, int rows, int kw_n,
                                  A* partial_base, int64_t tap0, int64_t splits, int64_t split) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
#pragma unroll
    for (int k = 0; k < KW; ++k) {
      A v = acc[r][k];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
      if (lane == 0) scratch[warp * ROWS * KW + r * KW + k] = v;
    }
  }
  __syncthreads();
  const int t = threadIdx.x;
  if (t < ROWS * KW) {
    const int r = t / KW, k = t % KW;
    if (r < rows && k < kw_n) {
      A sum = 0;
      for (int w = 0; w < kThreads / 32; ++w) sum += scratch[w * ROWS * KW + t];
      partial_base[((tap0 + r * kw_n + k)) * splits + split] = sum;
    }
  }
  __syncthreads();
}

// Block b of a row-chunk kernel: its split of the positions, its chunk of kernel rows [kh0,
// kh0 + rows), and the channel (NCHW) or channel group (NHWC) it serves.
struct ChunkBlock {
  int64_t split, outer;
  int kh0, rows;
};

template <int ROWS>
__device__ __forceinline__ ChunkBlock chunk_block(int64_t b, const WeightGrid& g, int64_t kernel_h) {
  ChunkBlock cb;
  cb.split = b % g.splits;
  cb.outer = b / (g.splits * g.chunks);
  cb.kh0 = static_cast<int>(((b / g.splits) % g.chunks) * ROWS);
  cb.rows = static_cast<int>(std::min<int64_t>(ROWS, kernel_h - cb.kh0));
  return cb;
}

// Adds gv times the input under output position q to the chunk's sums: `image` is the input of
// q's batch element at the right channel, rows row_stride and columns col_stride elements apart.
template <typename T, typename A, int KW, int ROWS>
__device__ __forceinline__ void accumulate_chunk(A (&acc)[ROWS][KW], const DepthwiseParams& p,
                                                 const ChunkBlock& cb, int oh, int ow, A gv,
                                                 const T* image, int64_t row_stride,
                                                 int64_t col_stride) {
  const int in_h = static_cast<int>(p.in_h), in_w = static_cast<int>(p.in_w);
  const int kw_n = static_cast<int>(p.kernel_w);
  const int ih0 = oh * static_cast<int>(p.stride_h) - static_cast<int>(p.pad_h) +
                  cb.kh0 * static_cast<int>(p.dil_h);
  const int iw0 = ow * static_cast<int>(p.stride_w) - static_cast<int>(p.pad_w);
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int ih = ih0 + r * static_cast<int>(p.dil_h);
    if (r < cb.rows && ih >= 0 && ih < in_h) {
      const T* src = image + int64_t(ih) * row_stride;
#pragma unroll
      for (int k = 0; k < KW; ++k) {
        const int iw = iw0 + k * static_cast<int>(p.dil_w);
        if (k < kw_n && iw >= 0 && iw < in_w) acc[r][k] += gv * load(src + int64_t(iw) * col_stride);
      }
    }
  }
}

// Output position q (flat over N, oH, oW) as (n, oh, ow).
__device__ __forceinline__ void position_of(int64_t q, const DivU32& div_ow, const DivU32& div_oh,
                                            const DepthwiseParams& p, uint32_t* n, int* oh, int* ow) {
  const uint32_t row = div_ow.div(static_cast<uint32_t>(q));
  *n = div_oh.div(row);
  *ow = static_cast<int>(static_cast<uint32_t>(q) - row * static_cast<uint32_t>(p.out_w));
  *oh = static_cast<int>(row - *n * static_cast<uint32_t>(p.out_h));
}

template <typename T, int KW, int ROWS>
__global__ void __launch_bounds__(kThreads)
    backward_weight_nchw_rows(DepthwiseParams p, WeightGrid g, DivU32 div_ow, DivU32 div_oh,
                              const T* __restrict__ go, const T* __restrict__ in,
                              acc_t<T>* __restrict__ partial) {
  using A = acc_t<T>;
  __shared__ A scratch[(kThreads / 32) * ROWS * KW];
  const int64_t taps = p.kernel_h * p.kernel_w;
  const int64_t positions = p.batch * p.out_h * p.out_w;
  const int64_t total = p.out_channels * g.chunks * g.splits;
  const int kw_n = static_cast<int>(p.kernel_w);
  for (int64_t b = blockIdx.x; b < total; b += gridDim.x) {
    const ChunkBlock cb = chunk_block<ROWS>(b, g, p.kernel_h);
    const int64_t co = cb.outer, c = co / p.mult;
    A acc[ROWS][KW];
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
#pragma unroll
      for (int k = 0; k < KW; ++k) acc[r][k] = A(0);
    const int64_t q1 = std::min<int64_t>((cb.split + 1) * g.per_split, positions);
    for (int64_t q = cb.split * g.per_split + threadIdx.x; q < q1; q += kThreads) {
      uint32_t n;
      int oh, ow;
      position_of(q, div_ow, div_oh, p, &n, &oh, &ow);
      const A gv = load(go + ((int64_t(n) * p.out_channels + co) * p.out_h + oh) * p.out_w + ow);
      accumulate_chunk<T>(acc, p, cb, oh, ow, gv, in + (int64_t(n) * p.channels + c) * p.in_h * p.in_w,
                          p.in_w, 1);
    }
    reduce_chunk_nchw<A, KW, ROWS>(acc, scratch, cb.rows, kw_n, partial + co * taps * g.splits,
                                   int64_t(cb.kh0) * kw_n, g.splits, cb.split);
  }
}

// NHWC: 32 channels x 8 position lanes per block; a warp reads 32 consecutive channels of one
// pixel. The 8 lanes' sums are reduced in order through shared memory, one tap at a time.
template <typename T, int KW, int ROWS>
__global__ void __launch_bounds__(kThreads)
    backward_weight_nhwc_rows(DepthwiseParams p, WeightGrid g, DivU32 div_ow, DivU32 div_oh,
                              const T* __restrict__ go, const T* __restrict__ in,
                              acc_t<T>* __restrict__ partial) {
  using A = acc_t<T>;
  __shared__ A scratch[8][33];
  const int64_t taps = p.kernel_h * p.kernel_w;
  const int64_t Co = p.out_channels;
  const int64_t groups = ceil_div(Co, 32);
  const int64_t positions = p.batch * p.out_h * p.out_w;
  const int64_t total = groups * g.chunks * g.splits;
  const int kw_n = static_cast<int>(p.kernel_w);
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  for (int64_t b = blockIdx.x; b < total; b += gridDim.x) {
    const ChunkBlock cb = chunk_block<ROWS>(b, g, p.kernel_h);
    const int64_t co = cb.outer * 32 + tx;
    A acc[ROWS][KW];
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
#pragma unroll
      for (int k = 0; k < KW; ++k) acc[r][k] = A(0);
    if (co < Co) {
      const int64_t c = co / p.mult;
      const int64_t q1 = std::min<int64_t>((cb.split + 1) * g.per_split, positions);
      for (int64_t q = cb.split * g.per_split + ty; q < q1; q += 8) {
        uint32_t n;
        int oh, ow;
        position_of(q, div_ow, div_oh, p, &n, &oh, &ow);
        const A gv = load(go + q * Co + co);
        accumulate_chunk<T>(acc, p, cb, oh, ow, gv, in + int64_t(n) * p.in_h * p.in_w * p.channels + c,
                            p.in_w * p.channels, p.channels);
      }
    }
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
#pragma unroll
      for (int k = 0; k < KW; ++k) {
        if (r < cb.rows && k < kw_n) {  // the same for the whole block
          __syncthreads();
          scratch[ty][tx] = acc[r][k];
          __syncthreads();
          if (ty == 0 && co < Co) {
            A sum = 0;
            for (int l = 0; l < 8; ++l) sum += scratch[l][tx];
            partial[(co * taps + int64_t(cb.kh0 + r) * kw_n + k) * g.splits + cb.split] = sum;
          }
        }
      }
    }
  }
}

// grad_weight, second pass: each weight element sums its splits in order.
template <typename T>
__global__ void backward_weight_finish(int64_t elems, int64_t splits,
                                       const acc_t<T>* __restrict__ partial, T* __restrict__ gw) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= elems) return;
  acc_t<T> s = 0;
  for (int64_t k = 0; k < splits; ++k) s += partial[i * splits + k];
  gw[i] = static_cast<T>(s);
}

}  // namespace

template <typename T>
cudaError_t depthwise_forward(const DepthwiseParams& p, const T* input, const T* weight,
                              const T* bias, T* output, cudaStream_t stream) {
  if (p.layout == Layout::kNHWC) {
    const int64_t total = p.batch * p.out_h * p.out_w * p.out_channels;
    constexpr int V = kVec<T>;
    if (p.mult == 1 && p.channels % V == 0 &&
        fits_u32(std::max(total, p.batch * p.in_h * p.in_w * p.channels)) && aligned16(input) &&
        aligned16(weight) && aligned16(bias) && aligned16(output)) {
      forward_nhwc_vec<T><<<grid_for(ceil_div(total / V, kThreads)), kThreads, 0, stream>>>(
          p, DivU32(p.channels / V), DivU32(p.out_w), DivU32(p.out_h), input, weight, bias, output);
    } else {
      forward_nhwc<T><<<grid_for(ceil_div(total, kThreads)), kThreads, 0, stream>>>(
          p, input, weight, bias, output);
    }
    return cudaGetLastError();
  }
  const Tile t = make_tile<T>(p);
  if (t.smem_bytes > 0) {
    const int64_t blocks = p.batch * p.out_channels * t.tiles_w * t.tiles_h;
    dim3 block(t.tw, kThreads / t.tw);
    forward_nchw_tiled<T><<<grid_for(blocks), block, t.smem_bytes, stream>>>(p, t, input, weight,
                                                                              bias, output);
  } else {
    const int64_t total = p.batch * p.out_channels * p.out_h * p.out_w;
    forward_nchw_direct<T><<<grid_for(ceil_div(total, kThreads)), kThreads, 0, stream>>>(
        p, input, weight, bias, output);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t depthwise_backward_input(const DepthwiseParams& p, const T* grad_output,
                                     const T* weight, T* grad_input, cudaStream_t stream) {
  const int64_t total = p.batch * p.channels * p.in_h * p.in_w;
  if (p.layout == Layout::kNHWC) {
    backward_input_nhwc<T><<<grid_for(ceil_div(total, kThreads)), kThreads, 0, stream>>>(
        p, grad_output, weight, grad_input);
  } else {
    backward_input_nchw<T><<<grid_for(ceil_div(total, kThreads)), kThreads, 0, stream>>>(
        p, grad_output, weight, grad_input);
  }
  return cudaGetLastError();
}

namespace {

// The row-chunk kernels' shape for a kernel width: (columns bound, rows per chunk), or {0, 0}
// when the width is over 32 or the indices do not fit 31 bits (the per-tap kernels then run).
struct ChunkShape {
  int kw, rows;
};

ChunkShape chunk_shape(const DepthwiseParams& p) {
  const int64_t largest = std::max(p.batch * p.out_h * p.out_w * p.out_channels,
                                   p.batch * p.in_h * p.in_w * p.channels);
  if (!fits_u32(largest)) return {0, 0};
  if (p.kernel_w <= 3) return {3, 3};
  if (p.kernel_w <= 5) return {5, 5};
  if (p.kernel_w <= 7) return {7, 7};
  if (p.kernel_w <= 16) return {16, 2};
  if (p.kernel_w <= 32) return {32, 1};
  return {0, 0};
}

int64_t channel_blocks(const DepthwiseParams& p) {
  return p.layout == Layout::kNHWC ? ceil_div(p.out_channels, 32) : p.out_channels;
}

template <typename T, int KW, int ROWS>
void launch_weight_rows(const DepthwiseParams& p, const T* grad_output, const T* input,
                        acc_t<T>* partial, cudaStream_t stream) {
  const WeightGrid g = weight_grid<ROWS>(p, channel_blocks(p));
  const int64_t blocks = channel_blocks(p) * g.chunks * g.splits;
  if (p.layout == Layout::kNHWC) {
    backward_weight_nhwc_rows<T, KW, ROWS><<<grid_for(blocks), kThreads, 0, stream>>>(
        p, g, DivU32(p.out_w), DivU32(p.out_h), grad_output, input, partial);
  } else {
    backward_weight_nchw_rows<T, KW, ROWS><<<grid_for(blocks), kThreads, 0, stream>>>(
        p, g, DivU32(p.out_w), DivU32(p.out_h), grad_output, input, partial);
  }
}

}  // namespace

int64_t depthwise_backward_weight_splits(const DepthwiseParams& p) {
  // A function of the shape only, so repeated runs reduce in the same order.
  const ChunkShape cs = chunk_shape(p);
  if (cs.rows > 0) {
    const int64_t blocks = channel_blocks(p);
    switch (cs.rows) {
      case 1: return weight_grid<1>(p, blocks).splits;
      case 2: return weight_grid<2>(p, blocks).splits;
      case 3: return weight_grid<3>(p, blocks).splits;
      case 5: return weight_grid<5>(p, blocks).splits;
      default: return weight_grid<7>(p, blocks).splits;
    }
  }
  const int64_t positions = p.batch * p.out_h * p.out_w;
  return std::max<int64_t>(1, std::min<int64_t>(64, positions / 8192));
}

template <typename T>
cudaError_t depthwise_backward_weight(const DepthwiseParams& p, const T* grad_output,
                                      const T* input, T* grad_weight, void* workspace,
                                      cudaStream_t stream) {
  using A = acc_t<T>;
  const int64_t splits = depthwise_backward_weight_splits(p);
  const int64_t taps = p.kernel_h * p.kernel_w;
  A* partial = static_cast<A*>(workspace);
  const ChunkShape cs = chunk_shape(p);
  if (cs.kw == 3) {
    launch_weight_rows<T, 3, 3>(p, grad_output, input, partial, stream);
  } else if (cs.kw == 5) {
    launch_weight_rows<T, 5, 5>(p, grad_output, input, partial, stream);
  } else if (cs.kw == 7) {
    launch_weight_rows<T, 7, 7>(p, grad_output, input, partial, stream);
  } else if (cs.kw == 16) {
    launch_weight_rows<T, 16, 2>(p, grad_output, input, partial, stream);
  } else if (cs.kw == 32) {
    launch_weight_rows<T, 32, 1>(p, grad_output, input, partial, stream);
  } else if (p.layout == Layout::kNHWC) {
    const int64_t blocks = taps * ceil_div(p.out_channels, 32) * splits;
    backward_weight_nhwc_partial<T><<<grid_for(blocks), dim3(32, 8), 0, stream>>>(
        p, splits, grad_output, input, partial);
  } else {
    const int64_t blocks = taps * p.out_channels * splits;
    backward_weight_nchw_partial<T><<<grid_for(blocks), kThreads, 0, stream>>>(
        p, splits, grad_output, input, partial);
  }
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const int64_t elems = p.out_channels * taps;
  backward_weight_finish<T><<<grid_for(ceil_div(elems, kThreads)), kThreads, 0, stream>>>(
      elems, splits, partial, grad_weight);
  return cudaGetLastError();
}

#define ATROUS_INSTANTIATE(T)                                                                  \
  template cudaError_t depthwise_forward<T>(const DepthwiseParams&, const T*, const T*,         \
                                            const T*, T*, cudaStream_t);                        \
  template cudaError_t depthwise_backward_input<T>(const DepthwiseParams&, const T*, const T*, \
                                                   T*, cudaStream_t);                           \
  template cudaError_t depthwise_backward_weight<T>(const DepthwiseParams&, const T*, const T*, \
                                                    T*, void*, cudaStream_t);

ATROUS_INSTANTIATE(float)
ATROUS_INSTANTIATE(double)
ATROUS_INSTANTIATE(c10::Half)
ATROUS_INSTANTIATE(c10::BFloat16)
#undef ATROUS_INSTANTIATE

}  // namespace cuda
}  // namespace atrous
