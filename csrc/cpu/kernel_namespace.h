// For the kernel files and their headers only: they are compiled once per CPU capability
// (capability.h), and their code lives in `namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY`,
// so the copies of one function for two instruction sets never share a symbol.
#pragma once

#ifndef ATROUS_CPU_CAPABILITY
#error "a CPU kernel header in a file built once: kernel files are built once per CPU capability (csrc/cpu/capability.h)"
#endif

#include <cstddef>
#include <memory>
#include <vector>

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// std::allocator under a name of this capability's namespace. A std::vector<T> that a kernel file
// fills (vector(n, value), resize, ...) instantiates the standard library's templates as weak
// symbols shared with every other object, and the linker keeps one copy, perhaps one compiled with
// AVX-512; Buffer<T>'s instantiations name the capability, so each copy stays with its own kernels
// (tests/test_cpu_capability.py checks the library's disassembly).
template <typename T>
struct KernelAllocator {
  using value_type = T;
  KernelAllocator() noexcept = default;
  template <typename U>
  KernelAllocator(const KernelAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  friend bool operator==(const KernelAllocator&, const KernelAllocator&) noexcept { return true; }
};

// The kernels' scratch and table vectors: std::vector with the capability's allocator.
template <typename T>
using Buffer = std::vector<T, KernelAllocator<T>>;

}  // namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY
