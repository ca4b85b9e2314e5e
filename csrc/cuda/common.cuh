// Launch shapes shared by the element-wise CUDA kernels (one thread per element, grid-stride
// loops): block size and a grid that covers n elements, capped so it always launches.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../common/depthwise_params.h"  // ceil_div

namespace atrous {
namespace cuda {

constexpr int kThreads = 256;
constexpr int64_t kMaxGrid = 1 << 30;

inline unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(ceil_div(n, kThreads), kMaxGrid)));
}

}  // namespace cuda
}  // namespace atrous
