// Division by a divisor fixed at launch, for the CUDA kernels' index decompositions: a 64-bit
// integer division costs a GPU dozens of instructions, and a kernel that decomposes a flat index
// into (n, c, h, w) for every element it touches spends more time dividing than moving bytes.
//
//  - DivU32: for indices below 2^31, a multiply-high and a shift (Granlund and Montgomery's
//    round-up method): with s = ceil(log2(d)) and m = floor(2^32 * (2^s - d) / d) + 1,
//    n / d = (umulhi(n, m) + n) >> s for every n < 2^31 (the sum cannot overflow 32 bits).
//  - DivI64: plain 64-bit division, for tensors of 2^31 elements or more.
// Both expose index_t, div(n) and the divisor d, so one kernel template serves both widths.
#pragma once

#include <cstdint>

#include "macros.h"

namespace atrous {

struct DivU32 {
  using index_t = uint32_t;
  uint32_t d = 1, m = 1, s = 0;

  DivU32() = default;
  explicit DivU32(int64_t divisor) : d(static_cast<uint32_t>(divisor)) {
    while ((uint64_t(1) << s) < d) ++s;
    m = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  ATROUS_HD uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t t = __umulhi(n, m);
#else
    const uint32_t t = static_cast<uint32_t>((uint64_t(n) * m) >> 32);
#endif
    return (t + n) >> s;
  }
};

struct DivI64 {
  using index_t = int64_t;
  int64_t d = 1;

  DivI64() = default;
  explicit DivI64(int64_t divisor) : d(divisor) {}
  ATROUS_HD int64_t div(int64_t n) const { return n / d; }
};

// Whether every flat index of a launch fits DivU32 (below 2^31).
inline bool fits_u32(int64_t largest_numel) { return largest_numel < (int64_t(1) << 31); }

}  // namespace atrous
