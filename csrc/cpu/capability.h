// CPU capabilities: the instruction sets the CPU kernels are compiled for, and the one in use.
//
// Every kernel file (csrc/cpu/<op>/, all but ops.cpp and plan.cpp) is compiled once per capability
// in the same build, with that capability's compiler flags and with ATROUS_CPU_CAPABILITY naming
// the namespace its code lives in (atrous::cpu::avx2, ::avx512, or ::base), so that the copies
// never share a symbol. Each op's kernels are reached through a table of function pointers per
// capability (<op>/dispatch.h, filled by <op>/table.cpp); the host code (ops.cpp, compiled once,
// for the compiler's default target) takes the table of the capability chosen at the first call:
// the best one this CPU runs, or the one ATROUS_CPU_CAPABILITY in the environment asks for.
// The kernels compute in vectors of one register of their capability (vector_bytes.h), which the
// plans (<op>/plan.cpp) size their channel blocks by: active_vector_lanes().
//
// On x86-64 the default build has two (ATROUS_CPU_MULTI_ISA): "avx2" (AVX2, FMA, F16C: x86-64 CPUs
// since 2013-2015) and "avx512" (AVX-512 F, CD, BW, DQ, VL on top); on a CPU without AVX2 the first
// call raises, naming what is missing. Other targets, and builds for one machine
// (ATROUS_CPU_ARCH=native), have one, "default" (the compiler's target, namespace base).
// Compiled for SSE2 alone the kernels (64-byte vectors there, in four registers each) take over
// half an hour to build, for little use, so x86-64 has no SSE2 capability.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace atrous {
namespace cpu {

enum class Capability : int { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

const char* capability_name(Capability c);
// "avx2, avx512": the names of `caps`, in order, joined by `separator`.
std::string capability_names(const std::vector<Capability>& caps, const char* separator = ", ");

// Bytes of the vectors the kernels of `c` compute in (vector_bytes.h), and lanes of them for the
// accumulation type of a scalar type of element_size bytes (double: 8 bytes; float and the half
// types: 4) in the active capability's kernels.
int vector_bytes(Capability c);
int64_t active_vector_lanes(int64_t element_size);
// The vectors the registers of the active capability's kernels hold (their kVectorRegisters).
int active_vector_registers();

// What this build has, lowest first.
const std::vector<Capability>& built_capabilities();
// Those of them this CPU (and its operating system) can run, lowest first.
const std::vector<Capability>& supported_capabilities();

// The capability of `requested` (empty: the best of `supported`) among `supported`, or a
// c10::Error naming the value and what is allowed. What the first call of active_capability()
// does with $ATROUS_CPU_CAPABILITY and supported_capabilities(); apart for tests.
Capability choose_capability(const std::string& requested, const std::vector<Capability>& supported);

// Chosen once, at the first call; throws (every time) if $ATROUS_CPU_CAPABILITY asks for one that
// is unknown, not built, or not supported here, or if this CPU runs none of the build's.
Capability active_capability();

// Who made this CPU: "intel", "amd" or "other" (also on other architectures). The plans use it
// where the same capability's kernels, or the libraries atrous calls, measured differently on the
// two makers' CPUs (separable/plan.cpp: the pointwise engine).
const char* cpu_vendor();

// One K<scalar_t> for each scalar type the kernels take: the shape of an op's kernel table.
template <template <typename> class K>
struct PerScalarType {
  K<float> f32;
  K<double> f64;
  K<c10::Half> f16;
  K<c10::BFloat16> bf16;

  template <typename scalar_t>
  const K<scalar_t>& get() const {
    if constexpr (std::is_same_v<scalar_t, float>) {
      return f32;
    } else if constexpr (std::is_same_v<scalar_t, double>) {
      return f64;
    } else if constexpr (std::is_same_v<scalar_t, c10::Half>) {
      return f16;
    } else {
      static_assert(std::is_same_v<scalar_t, c10::BFloat16>, "float, double, Half or BFloat16");
      return bf16;
    }
  }
};

// The table of the active capability in a build of avx2 and avx512 (every capability it can choose).
template <typename Table>
const Table& active_table(const Table& avx2, const Table& avx512) {
  return active_capability() == Capability::kAvx512 ? avx512 : avx2;
}

}  // namespace cpu
}  // namespace atrous

// Declares the kernel table `name` (of type Type) of every capability built, and defines
// `active_<name>()`, which gives the active one. For the host files of an op (its dispatch.h);
// the kernel files define the tables (table.cpp).
#ifndef ATROUS_CPU_CAPABILITY
#if ATROUS_CPU_MULTI_ISA
#define ATROUS_CPU_KERNEL_TABLE(Type, name)                                                     \
  namespace avx2 { extern const Type name; }                                                    \
  namespace avx512 { extern const Type name; }                                                  \
  inline const Type& active_##name() { return active_table<Type>(avx2::name, avx512::name); }
#else
#define ATROUS_CPU_KERNEL_TABLE(Type, name)                  \
  namespace base { extern const Type name; }                 \
  inline const Type& active_##name() { return base::name; }
#endif
#else
#define ATROUS_CPU_KERNEL_TABLE(Type, name)
#endif
