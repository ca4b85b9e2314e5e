// Which CPU capability the kernels run with (capability.h): what the build has, what this CPU
// runs, and $ATROUS_CPU_CAPABILITY.
#include "capability.h"

#include <c10/util/Exception.h>

#include <cstdlib>

#include "vector_bytes.h"

namespace atrous {
namespace cpu {
namespace {

#if ATROUS_CPU_MULTI_ISA
constexpr Capability kBuilt[] = {Capability::kAvx2, Capability::kAvx512};
#else
constexpr Capability kBuilt[] = {Capability::kDefault};
#endif
constexpr Capability kAll[] = {Capability::kDefault, Capability::kAvx2, Capability::kAvx512};

bool cpu_runs(Capability c) {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  // __builtin_cpu_supports also asks the operating system whether it saves the vector registers.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  switch (c) {
    case Capability::kDefault:
      return true;
    case Capability::kAvx2:
      return avx2;
    case Capability::kAvx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
  }
  return false;
#else
  return c == Capability::kDefault;
#endif
}

std::string names(const std::vector<Capability>& caps) { return capability_names(caps); }

const char* vendor_of_this_cpu() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_is("intel")) return "intel";
  if (__builtin_cpu_is("amd")) return "amd";
#endif
  return "other";
}

}  // namespace

std::string capability_names(const std::vector<Capability>& caps, const char* separator) {
  std::string s;
  for (Capability c : caps) s += (s.empty() ? "" : separator) + std::string(capability_name(c));
  return s;
}

int vector_bytes(Capability c) {
  switch (c) {
    case Capability::kAvx512:
      return 64;
    case Capability::kAvx2:
      return 32;
    default:  // the host files' target: that of the kernels in a build with one capability
      return ATROUS_TARGET_VECTOR_BYTES;
  }
}

int64_t active_vector_lanes(int64_t element_size) {
  return vector_bytes(active_capability()) / (element_size == 8 ? 8 : 4);
}

int active_vector_registers() {
  switch (active_capability()) {
    case Capability::kAvx512:
      return 32;
    case Capability::kAvx2:
      return 16;
    default:  // the host files' target, as in vector_bytes
      return ATROUS_TARGET_VECTOR_REGISTERS;
  }
}

const char* cpu_vendor() {
  static const char* const vendor = vendor_of_this_cpu();
  return vendor;
}

const char* capability_name(Capability c) {
  switch (c) {
    case Capability::kDefault:
      return "default";
    case Capability::kAvx2:
      return "avx2";
    case Capability::kAvx512:
      return "avx512";
  }
  return "unknown";
}

const std::vector<Capability>& built_capabilities() {
  static const std::vector<Capability> built(std::begin(kBuilt), std::end(kBuilt));
  return built;
}

const std::vector<Capability>& supported_capabilities() {
  static const std::vector<Capability> supported = [] {
    std::vector<Capability> s;
    for (Capability c : kBuilt)
      if (cpu_runs(c)) s.push_back(c);
    return s;
  }();
  return supported;
}

Capability choose_capability(const std::string& requested, const std::vector<Capability>& supported) {
  TORCH_CHECK(!supported.empty(), "atrous: this build's CPU kernels (", names(built_capabilities()),
              ") need AVX2, FMA and F16C, which this CPU lacks; build atrous on this machine with "
              "ATROUS_CPU_ARCH=native for kernels it runs");
  if (requested.empty()) return supported.back();
  const std::vector<Capability> all(std::begin(kAll), std::end(kAll));
  for (Capability c : all) {
    if (requested != capability_name(c)) continue;
    for (Capability s : supported)
      if (s == c) return c;
    bool built = false;
    for (Capability b : built_capabilities()) built = built || b == c;
    TORCH_CHECK(!built, "atrous: ATROUS_CPU_CAPABILITY='", requested,
                "' is not supported by this CPU; it supports ", names(supported));
    TORCH_CHECK(false, "atrous: ATROUS_CPU_CAPABILITY='", requested,
                "' is not in this build of atrous, which has ", names(built_capabilities()),
                "; choose one of ", names(supported));
  }
  TORCH_CHECK(false, "atrous: ATROUS_CPU_CAPABILITY='", requested,
              "' is not a CPU capability; use one of ", names(all), " (this CPU and build: ",
              names(supported), "), or leave it unset for the best");
}

Capability active_capability() {
  static const Capability active = [] {
    const char* env = std::getenv("ATROUS_CPU_CAPABILITY");
    return choose_capability(env ? env : "", supported_capabilities());
  }();
  return active;
}

}  // namespace cpu
}  // namespace atrous
