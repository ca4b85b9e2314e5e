// The autograd kernels of csrc/autograd.cpp, seen from outside it.
#pragma once

#include <cstdint>

namespace atrous {

// How many backward ops the autograd of the four ops has called straight below autograd so far, in
// this process (registration.cpp's _direct_backward_calls, for tests: that path, or the
// dispatcher's, is taken where it should be).
int64_t direct_backward_call_count();

}  // namespace atrous
