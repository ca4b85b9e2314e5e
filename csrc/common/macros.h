// Host/device qualifiers shared by the CPU and CUDA sources.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define ATROUS_HD __host__ __device__ __forceinline__
#else
#define ATROUS_HD inline
#endif
