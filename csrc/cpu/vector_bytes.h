// The width of the vectors the CPU kernels compute in: one register of the target the file is
// compiled for (64 bytes with AVX-512's 32 zmm registers; 32 with AVX2's 16 ymm, whose register
// file the kernels' register blocks of 64-byte vectors overflowed into the stack), and how many
// such vectors the registers hold (elsewhere a 64-byte vector takes four 16-byte registers of
// 32). Kernel files (simd.h) take both from their own compiler flags; host files ask capability.h
// for the active capability's.
#pragma once

#if defined(__AVX512F__)
#define ATROUS_TARGET_VECTOR_BYTES 64
#define ATROUS_TARGET_VECTOR_REGISTERS 32
#elif defined(__AVX2__)
#define ATROUS_TARGET_VECTOR_BYTES 32
#define ATROUS_TARGET_VECTOR_REGISTERS 16
#else
#define ATROUS_TARGET_VECTOR_BYTES 64
#define ATROUS_TARGET_VECTOR_REGISTERS 8
#endif
