// Host/device qualifiers shared by the CPU and CUDA sources, and compiler features.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define ATROUS_HD __host__ __device__ __forceinline__
#else
#define ATROUS_HD inline
#endif

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define ATROUS_HAVE_SHUFFLEVECTOR 1  // __builtin_shufflevector with constant lane lists
#endif
