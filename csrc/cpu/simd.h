// Vector helpers shared by the CPU kernels: Simd (vectors of one register of the target through
// the compiler's vector extension, with masked first-m loads and stores), the accumulation type of
// each scalar type, and Cast (loads and stores of scalar_t lanes as vectors of the accumulation
// type, so that the half types are computed in float).
#pragma once

#include "kernel_namespace.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "../common/macros.h"  // ATROUS_HAVE_SHUFFLEVECTOR
#include "vector_bytes.h"

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY {

// The vectors the target's registers hold (vector_bytes.h), for kernels that choose how many to
// keep there.
constexpr int kVectorRegisters = ATROUS_TARGET_VECTOR_REGISTERS;

// Orders the non-temporal stores (Simd::stream) this thread made before the stores after it.
inline void stream_fence() {
#if defined(__AVX512F__)
  _mm_sfence();
#endif
}

// float for float and the half types, double for double.
template <typename T>
using acc_type_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// SIMD vectors through the GCC/Clang vector extension, by default one register of the target
// (vector_bytes.h: 64 bytes on AVX-512, 32 on AVX2), so that a kernel's register blocks of
// vectors fit the target's registers; the inner loops are explicitly vectorised on every x86-64
// (and aarch64) build. Simd<T, W> has W lanes (narrower vectors take the channels_last forward's
// last channels).
template <typename T, int W = ATROUS_TARGET_VECTOR_BYTES / static_cast<int>(sizeof(T))>
struct Simd {
  typedef T vec __attribute__((vector_size(W * sizeof(T))));
  static constexpr int kLanes = W;
  static inline vec load(const T* p) {
    vec v;
    __builtin_memcpy(&v, p, sizeof(vec));
    return v;
  }
  static inline void store(T* p, vec v) { __builtin_memcpy(p, &v, sizeof(vec)); }
  // Whether stream() writes one whole cache line per store (64-byte vectors, AVX-512).
#if defined(__AVX512F__)
  static constexpr bool kStreams = sizeof(vec) == 64 && (std::is_same_v<T, float> || std::is_same_v<T, double>);
#else
  static constexpr bool kStreams = false;
#endif
  // A non-temporal store of v to p (64-byte aligned; kStreams only): the line goes to memory
  // without being read into the caches first, which an output larger than the last-level cache
  // would otherwise cost for every line it writes. The writer calls stream_fence() before its
  // stores are read elsewhere.
  static inline void stream(T* p, vec v) {
#if defined(__AVX512F__)
    if constexpr (kStreams && std::is_same_v<T, float>) {
      _mm512_stream_ps(p, reinterpret_cast<__m512>(v));
      return;
    } else if constexpr (kStreams) {
      _mm512_stream_pd(p, reinterpret_cast<__m512d>(v));
      return;
    }
#endif
    store(p, v);
  }
  // v, held in a register from here on: a loaded value that several FMAs use would otherwise be
  // folded into each of them as a memory operand, one load per use (3 per pixel in a 3x3 row pass,
  // which bounds it by the loads on a core that issues one 64-byte load a cycle, as AMD's Zen 4).
  static inline vec in_register(vec v) {
#if defined(__x86_64__)
    asm("" : "+v"(v));
#endif
    return v;
  }
  // Stores the first m (< W) lanes: one masked store on AVX-512 and AVX2.
  static inline void store_first(T* p, vec v, int64_t m) {
#if defined(__AVX512F__)
    if constexpr (sizeof(vec) == 64 && std::is_same_v<T, float>) {
      _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << m) - 1), reinterpret_cast<__m512>(v));
      return;
    } else if constexpr (sizeof(vec) == 64 && std::is_same_v<T, double>) {
      _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << m) - 1), reinterpret_cast<__m512d>(v));
      return;
    }
#endif
#if defined(__AVX2__)
    if constexpr (sizeof(vec) == 32 && std::is_same_v<T, float>) {
      _mm256_maskstore_ps(p, first_lanes32(m), reinterpret_cast<__m256>(v));
      return;
    } else if constexpr (sizeof(vec) == 32 && std::is_same_v<T, double>) {
      _mm256_maskstore_pd(p, first_lanes64(m), reinterpret_cast<__m256d>(v));
      return;
    }
#endif
    for (int64_t i = 0; i < m; ++i) p[i] = v[i];
  }
  // The first m (< W) lanes from p, the others zero: one masked load on AVX-512 and AVX2 (lanes
  // past m are not read).
  static inline vec load_first(const T* p, int64_t m) {
#if defined(__AVX512F__)
    if constexpr (sizeof(vec) == 64 && std::is_same_v<T, float>) {
      return reinterpret_cast<vec>(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << m) - 1), p));
    } else if constexpr (sizeof(vec) == 64 && std::is_same_v<T, double>) {
      return reinterpret_cast<vec>(_mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << m) - 1), p));
    }
#endif
#if defined(__AVX2__)
    if constexpr (sizeof(vec) == 32 && std::is_same_v<T, float>) {
      return reinterpret_cast<vec>(_mm256_maskload_ps(p, first_lanes32(m)));
    } else if constexpr (sizeof(vec) == 32 && std::is_same_v<T, double>) {
      return reinterpret_cast<vec>(_mm256_maskload_pd(p, first_lanes64(m)));
    }
#endif
    vec v = vec{};
    for (int64_t i = 0; i < m; ++i) v[i] = p[i];
    return v;
  }
  // x - 0 is x for every x (so it folds away, unlike 0 + x, which is +0 for x = -0).
  static inline vec broadcast(T x) { return x - vec{}; }

 private:
#if defined(__AVX2__)
  // All ones in the lanes below m: the masks of AVX2's masked loads and stores.
  static inline __m256i first_lanes32(int64_t m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(m)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static inline __m256i first_lanes64(int64_t m) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(m), _mm256_setr_epi64x(0, 1, 2, 3));
  }
#endif
};

// A vector of N lanes of T (a typedef whose lane type does not depend on the enclosing template
// loses its vector_size in GCC, so every such vector goes through this).
template <typename T, int N>
struct VecOf {
  typedef T type __attribute__((vector_size(N * sizeof(T))));
};

// The signed integer type as wide as T (the lane type of T's comparison masks).
template <typename T>
using same_width_int_t = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;

// Integer vectors with Simd<T>'s lane count: `lanes` with T's lane width (what comparing two
// Simd<T>::vec gives), `wide` with int64 lanes.
template <typename T, int W = Simd<T>::kLanes>
struct IntLanes {
  using lanes = typename VecOf<same_width_int_t<T>, W>::type;
  using wide = typename VecOf<int64_t, W>::type;
  // {0, step, 2 step, ...}
  static inline lanes iota(int64_t step) {
    lanes v;
    for (int i = 0; i < W; ++i) v[i] = static_cast<same_width_int_t<T>>(i * step);
    return v;
  }
  static inline lanes broadcast(int64_t x) { return static_cast<same_width_int_t<T>>(x) - lanes{}; }
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
  // Sixteen int64 values, in two 64-byte vectors (which compilers keep in registers), narrowed to
  // one vector of 16 int32.
  template <typename W8>
  static inline lanes narrow_pair(W8 lo, W8 hi) {
    using N8 = typename VecOf<int32_t, 8>::type;
    return __builtin_shufflevector(__builtin_convertvector(lo, N8), __builtin_convertvector(hi, N8), 0, 1, 2,
                                   3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  }
#endif
  static inline void store_wide(int64_t* p, lanes v) {
    const wide w = __builtin_convertvector(v, wide);
    __builtin_memcpy(p, &w, sizeof(wide));
  }
  static inline void store_wide_first(int64_t* p, lanes v, int64_t m) {
    for (int64_t i = 0; i < m; ++i) p[i] = v[i];
  }
  // p[i] - (base + i * step) where that lies in [0, span), else -1 (the W int64 values in
  // 64-byte vectors).
  static inline lanes offsets_within(const int64_t* p, int64_t base, int64_t step, int64_t span) {
    using W8 = typename VecOf<int64_t, 8>::type;
    W8 steps;
    for (int i = 0; i < 8; ++i) steps[i] = i * step;
    auto rel = [&](const int64_t* q) {
      W8 a;
      __builtin_memcpy(&a, q, sizeof(a));
      a -= base + steps;
      base += 8 * step;
      return (a >= 0) & (a < span - W8{}) ? a : -1 - W8{};
    };
    if constexpr (W == 8 && sizeof(same_width_int_t<T>) == 8) {
      return rel(p);
    } else if constexpr (W == 8 && sizeof(same_width_int_t<T>) == 4) {
      return __builtin_convertvector(rel(p), lanes);
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
    } else if constexpr (W == 16 && sizeof(same_width_int_t<T>) == 4) {
      const W8 lo = rel(p);  // before rel(p + 8): rel advances base
      return narrow_pair(lo, rel(p + 8));
#endif
    } else {
      lanes m;
      for (int i = 0; i < W; ++i) {
        const int64_t r = p[i] - (base + i * step);
        m[i] = r >= 0 && r < span ? r : -1;
      }
      return m;
    }
  }
  // All ones in lane i where p[i] == value (the W int64 values compared in 64-byte vectors, which
  // compilers keep in registers; a 128-byte comparison is split into scalar code by GCC 12).
  static inline lanes equal_wide(const int64_t* p, int64_t value) {
    using W8 = typename VecOf<int64_t, 8>::type;
    const W8 want = value - W8{};
    W8 a;
    __builtin_memcpy(&a, p, sizeof(a));
    if constexpr (W == 8 && sizeof(same_width_int_t<T>) == 8) {
      return a == want;
    } else if constexpr (W == 8 && sizeof(same_width_int_t<T>) == 4) {
      return __builtin_convertvector(a == want, lanes);
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
    } else if constexpr (W == 16 && sizeof(same_width_int_t<T>) == 4) {
      W8 b;
      __builtin_memcpy(&b, p + 8, sizeof(b));
      return narrow_pair(a == want, b == want);
#endif
    } else {
      lanes m;
      for (int i = 0; i < W; ++i) m[i] = p[i] == value ? -1 : 0;
      return m;
    }
  }
  // v in lane i where p[i] == value, else 0: the W int64 values compared straight into a mask
  // where AVX-512 has one (two compares and a mask merge, instead of equal_wide's vector of lanes
  // narrowed and compared again).
  template <typename V>
  static inline V where_equal(const int64_t* p, int64_t value, V v) {
#if defined(__AVX512F__)
    if constexpr (W == 16 && sizeof(T) == 4) {
      const __m512i want = _mm512_set1_epi64(value);
      const __mmask8 lo = _mm512_cmpeq_epi64_mask(_mm512_loadu_si512(p), want);
      const __mmask8 hi = _mm512_cmpeq_epi64_mask(_mm512_loadu_si512(p + 8), want);
      return reinterpret_cast<V>(_mm512_maskz_mov_ps(_mm512_kunpackb(hi, lo), reinterpret_cast<__m512>(v)));
    } else if constexpr (W == 8 && sizeof(T) == 8) {
      const __mmask8 m = _mm512_cmpeq_epi64_mask(_mm512_loadu_si512(p), _mm512_set1_epi64(value));
      return reinterpret_cast<V>(_mm512_maskz_mov_pd(m, reinterpret_cast<__m512d>(v)));
    }
#endif
    return equal_wide(p, value) ? v : V{};
  }
  // where_equal of the first m < W lanes (the others 0); values past m are not read.
  template <typename V>
  static inline V where_equal_first(const int64_t* p, int64_t value, V v, int64_t m) {
#if defined(__AVX512F__)
    if constexpr (W == 16 && sizeof(T) == 4) {
      const __m512i want = _mm512_set1_epi64(value);
      const __mmask8 first_lo = static_cast<__mmask8>(m >= 8 ? 0xFF : (1u << m) - 1);
      const __mmask8 first_hi = static_cast<__mmask8>(m <= 8 ? 0 : (1u << (m - 8)) - 1);
      const __mmask8 lo = _mm512_mask_cmpeq_epi64_mask(first_lo, _mm512_maskz_loadu_epi64(first_lo, p), want);
      const __mmask8 hi = _mm512_mask_cmpeq_epi64_mask(first_hi, _mm512_maskz_loadu_epi64(first_hi, p + 8), want);
      return reinterpret_cast<V>(_mm512_maskz_mov_ps(_mm512_kunpackb(hi, lo), reinterpret_cast<__m512>(v)));
    } else if constexpr (W == 8 && sizeof(T) == 8) {
      const __mmask8 first = static_cast<__mmask8>((1u << m) - 1);
      const __mmask8 hit =
          _mm512_mask_cmpeq_epi64_mask(first, _mm512_maskz_loadu_epi64(first, p), _mm512_set1_epi64(value));
      return reinterpret_cast<V>(_mm512_maskz_mov_pd(hit, reinterpret_cast<__m512d>(v)));
    }
#endif
    V out{};
    for (int64_t i = 0; i < m; ++i) out[i] = p[i] == value ? v[i] : 0;
    return out;
  }
  // The W int64 values at p, each of which fits T's lane width, in `lanes` (the first m, the
  // others -1, when m < W; values past m are not read).
  static inline lanes narrow(const int64_t* p, int64_t m = W) {
    using W8 = typename VecOf<int64_t, 8>::type;
    int64_t tail[W];
    if (m < W) {
      for (int i = 0; i < W; ++i) tail[i] = i < m ? p[i] : -1;
      p = tail;
    }
    if constexpr (W == 8) {
      W8 a;
      __builtin_memcpy(&a, p, sizeof(a));
      return __builtin_convertvector(a, lanes);
#ifdef ATROUS_HAVE_SHUFFLEVECTOR
    } else if constexpr (W == 16 && sizeof(same_width_int_t<T>) == 4) {
      W8 a, b;
      __builtin_memcpy(&a, p, sizeof(a));
      __builtin_memcpy(&b, p + 8, sizeof(b));
      return narrow_pair(a, b);
#endif
    } else {
      lanes v;
      for (int i = 0; i < W; ++i) v[i] = static_cast<same_width_int_t<T>>(p[i]);
      return v;
    }
  }
  // Lane i of the result is v[sel[i]] (0 <= sel[i] < W): one permute instruction for 16 lanes of
  // 32 bits with AVX-512 and 8 with AVX2, and for 8 lanes of 64 bits with AVX-512. V is T's
  // Simd vector or `lanes`.
  template <typename V>
  static inline V permute(V v, lanes sel) {
    static_assert(sizeof(V) == sizeof(lanes), "one lane per selector");
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64 && W == 16) {
      return reinterpret_cast<V>(_mm512_permutexvar_epi32(reinterpret_cast<__m512i>(sel), reinterpret_cast<__m512i>(v)));
    } else if constexpr (sizeof(V) == 64 && W == 8) {
      return reinterpret_cast<V>(_mm512_permutexvar_epi64(reinterpret_cast<__m512i>(sel), reinterpret_cast<__m512i>(v)));
    }
#endif
#if defined(__AVX2__)
    if constexpr (sizeof(V) == 32 && W == 8) {
      return reinterpret_cast<V>(_mm256_permutevar8x32_epi32(reinterpret_cast<__m256i>(v), reinterpret_cast<__m256i>(sel)));
    }
#endif
    V r;
    for (int i = 0; i < W; ++i) r[i] = v[sel[i] & (W - 1)];
    return r;
  }
};

// IEEE half <-> float in vectors of W lanes, for targets without a conversion instruction: the
// bit-level algorithms of c10's fp16_ieee_to_fp32_value (exact) and fp16_ieee_from_fp32_value
// (rounding to nearest even; every NaN becomes 0x7E00), applied to all lanes at once instead of
// one lane at a time.
template <int W>
inline typename VecOf<float, W>::type half_to_float(typename VecOf<uint16_t, W>::type h) {
  using u32 = typename VecOf<uint32_t, W>::type;
  using f32 = typename VecOf<float, W>::type;
  const u32 w = __builtin_convertvector(h, u32) << 16;
  const u32 sign = w & 0x80000000u;
  const u32 two_w = w + w;
  const u32 normal_bits = (two_w >> 4) + (0xE0u << 23);
  f32 normal, denormal;
  __builtin_memcpy(&normal, &normal_bits, sizeof(normal));
  normal *= 0x1.0p-112f;
  const u32 denormal_bits = (two_w >> 17) | (126u << 23);
  __builtin_memcpy(&denormal, &denormal_bits, sizeof(denormal));
  denormal -= 0.5f;
  u32 nb, db;
  __builtin_memcpy(&nb, &normal, sizeof(nb));
  __builtin_memcpy(&db, &denormal, sizeof(db));
  const u32 bits = sign | (two_w < (1u << 27) ? db : nb);
  f32 out;
  __builtin_memcpy(&out, &bits, sizeof(out));
  return out;
}

template <int W>
inline typename VecOf<uint16_t, W>::type float_to_half(typename VecOf<float, W>::type f) {
  using u32 = typename VecOf<uint32_t, W>::type;
  using f32 = typename VecOf<float, W>::type;
  u32 w;
  __builtin_memcpy(&w, &f, sizeof(w));
  const u32 abs_bits = w & 0x7FFFFFFFu;
  f32 base;
  __builtin_memcpy(&base, &abs_bits, sizeof(base));
  base = (base * 0x1.0p+112f) * 0x1.0p-110f;
  const u32 shl1_w = w + w;
  const u32 sign = w & 0x80000000u;
  u32 bias = shl1_w & 0xFF000000u;
  bias = bias < 0x71000000u ? 0x71000000u - u32{} : bias;
  const u32 scale_bits = (bias >> 1) + 0x07800000u;
  f32 scale;
  __builtin_memcpy(&scale, &scale_bits, sizeof(scale));
  base = scale + base;
  u32 bits;
  __builtin_memcpy(&bits, &base, sizeof(bits));
  const u32 nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
  const u32 out = (sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u - u32{} : nonsign);
  return __builtin_convertvector(out, typename VecOf<uint16_t, W>::type);
}

// Lanes of scalar_t in memory as Simd<acc_t> vectors: a plain load or store for float and double;
// the half types convert (exactly, on the way in; rounding to nearest, on the way out).
template <typename scalar_t, typename acc_t = acc_type_t<scalar_t>>
struct Cast {
  using S = Simd<acc_t>;
  using vec = typename S::vec;
  static constexpr int W = S::kLanes;
  static inline vec load(const scalar_t* p) {
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      return S::load(p);
    } else if constexpr (std::is_same_v<scalar_t, c10::BFloat16> && std::is_same_v<acc_t, float>) {
      using u16 = typename VecOf<uint16_t, W>::type;
      using u32 = typename VecOf<uint32_t, W>::type;
      u16 h;
      __builtin_memcpy(&h, p, sizeof(h));
      const u32 bits = __builtin_convertvector(h, u32) << 16;
      vec v;
      __builtin_memcpy(&v, &bits, sizeof(v));
      return v;
    } else {
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<scalar_t, c10::Half> && std::is_same_v<acc_t, float> && W == 16) {
        return reinterpret_cast<vec>(
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
      }
#elif defined(__F16C__)
      if constexpr (std::is_same_v<scalar_t, c10::Half> && std::is_same_v<acc_t, float> && W == 8) {
        return reinterpret_cast<vec>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
      }
      if constexpr (std::is_same_v<scalar_t, c10::Half> && std::is_same_v<acc_t, float> && W == 16) {
        const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
        vec v;
        __builtin_memcpy(&v, &lo, sizeof(lo));
        __builtin_memcpy(reinterpret_cast<char*>(&v) + sizeof(lo), &hi, sizeof(hi));
        return v;
      }
#endif
      vec v;
      if constexpr (std::is_same_v<scalar_t, c10::Half> && std::is_same_v<acc_t, float>) {
        using u16 = typename VecOf<uint16_t, W>::type;
        u16 h;
        __builtin_memcpy(&h, p, sizeof(h));
        return half_to_float<W>(h);
      }
      for (int i = 0; i < W; ++i) v[i] = static_cast<acc_t>(p[i]);
      return v;
    }
  }
  // The first m (< W) lanes, the others zero. The half types: a masked 16-bit load where
  // AVX-512BW has one (store_first likewise), else through a zeroed buffer: one short copy and one
  // vector conversion (lane-by-lane code, unrolled in every kernel that inlines it, multiplied
  // their compile time). The copies were most of the time of a masked channel tail: on the Zen 4
  // EPYC, two threads, bfloat16 forward, channels_last (8, 72, 40, 40) 3x3 0.541 -> 0.201 ms, (8,
  // 120, 20, 20) 5x5 0.357 -> 0.174; NCHW, whose channel tiles load and store with them, 0.418 ->
  // 0.361 and 0.207 -> 0.171.
  static inline vec load_first(const scalar_t* p, int64_t m) {
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      return S::load_first(p, m);
    } else {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
      if constexpr (sizeof(scalar_t) == 2 && W == 16) {
        return from_bits16(_mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << m) - 1), p));
      }
#endif
      scalar_t buf[W];
      std::memset(static_cast<void*>(buf), 0, sizeof(buf));
      std::memcpy(static_cast<void*>(buf), p, sizeof(scalar_t) * m);
      return load(buf);
    }
  }
  // Rounds to nearest even as c10's conversions do (a NaN stays a NaN: bfloat16's 0x7FC0).
  static inline void store(scalar_t* p, vec v) {
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      S::store(p, v);
    } else if constexpr (std::is_same_v<scalar_t, c10::BFloat16> && std::is_same_v<acc_t, float>) {
      using u16 = typename VecOf<uint16_t, W>::type;
      using u32 = typename VecOf<uint32_t, W>::type;
      u32 bits;
      __builtin_memcpy(&bits, &v, sizeof(bits));
      const u32 rounded = (bits + (((bits >> 16) & 1u) + 0x7FFFu)) >> 16;
      const u32 out = v != v ? 0x7FC0u - u32{} : rounded;
      const u16 h = __builtin_convertvector(out, u16);
      __builtin_memcpy(p, &h, sizeof(h));
    } else {
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<scalar_t, c10::Half> && std::is_same_v<acc_t, float> && W == 16) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                            _mm512_cvtps_ph(reinterpret_cast<__m512>(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        return;
      }
#elif defined(__F16C__)
      if constexpr (std::is_same_v<scalar_t, c10::Half> && std::is_same_v<acc_t, float> && W == 8) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(reinterpret_cast<__m256>(v),
                                                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        return;
      }
      if constexpr (std::is_same_v<scalar_t, c10::Half> && std::is_same_v<acc_t, float> && W == 16) {
        __m256 lo, hi;
        __builtin_memcpy(&lo, &v, sizeof(lo));
        __builtin_memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(lo), sizeof(hi));
        constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(lo, kRound));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 8), _mm256_cvtps_ph(hi, kRound));
        return;
      }
#endif
      if constexpr (std::is_same_v<scalar_t, c10::Half> && std::is_same_v<acc_t, float>) {
        const auto h = float_to_half<W>(v);
        __builtin_memcpy(p, &h, sizeof(h));
        return;
      }
      for (int i = 0; i < W; ++i) p[i] = static_cast<scalar_t>(v[i]);
    }
  }
  static inline void store_first(scalar_t* p, vec v, int64_t m) {
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      S::store_first(p, v, m);
    } else {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
      if constexpr (sizeof(scalar_t) == 2 && W == 16) {
        scalar_t bits[W];  // the 16 converted values, through a register (the compiler keeps it one)
        store(bits, v);
        __m256i h;
        __builtin_memcpy(&h, bits, sizeof(h));
        _mm256_mask_storeu_epi16(p, static_cast<__mmask16>((1u << m) - 1), h);
        return;
      }
#endif
      scalar_t buf[W];
      store(buf, v);
      std::memcpy(static_cast<void*>(p), buf, sizeof(scalar_t) * m);
    }
  }

 private:
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  // 16 values of a half type, as their bits in h, converted as load converts them.
  static inline vec from_bits16(__m256i h) {
    scalar_t bits[W];
    __builtin_memcpy(bits, &h, sizeof(h));
    return load(bits);
  }
#endif
};

#ifdef ATROUS_HAVE_SHUFFLEVECTOR
namespace detail {
template <int kFirst, typename V, int... I>
inline V every_other_lane(V a, V b, std::integer_sequence<int, I...>) {
  return __builtin_shufflevector(a, b, (2 * I + kFirst)...);
}
}  // namespace detail

// The even (odd) lanes of the 2W values a, b: lane i of the result is lane 2i (2i + 1) of a:b.
template <typename V, int W>
inline V even_lanes(V a, V b) {
  return detail::every_other_lane<0>(a, b, std::make_integer_sequence<int, W>{});
}
template <typename V, int W>
inline V odd_lanes(V a, V b) {
  return detail::every_other_lane<1>(a, b, std::make_integer_sequence<int, W>{});
}
// Transposes the W x W matrix whose rows are the W-lane vectors v: afterwards lane j of v[i] is
// what lane i of v[j] was. log2(W) rounds of perfect shuffles (each two-source permute one
// instruction on AVX-512).
namespace detail {
template <int W, typename V, int... I>
inline V interleave_half(V a, V b, std::integer_sequence<int, I...>, std::integral_constant<int, 0>) {
  return __builtin_shufflevector(a, b, ((I % 2) ? W + I / 2 : I / 2)...);
}
template <int W, typename V, int... I>
inline V interleave_half(V a, V b, std::integer_sequence<int, I...>, std::integral_constant<int, 1>) {
  return __builtin_shufflevector(a, b, ((I % 2) ? W + W / 2 + I / 2 : W / 2 + I / 2)...);
}
}  // namespace detail

template <int W, typename V>
inline void transpose_square(V (&v)[W]) {
  static_assert((W & (W - 1)) == 0, "W must be a power of two");
  for (int step = 1; step < W; step *= 2) {
    V o[W];
    for (int i = 0; i < W / 2; ++i) {
      o[2 * i] = detail::interleave_half<W>(v[i], v[i + W / 2], std::make_integer_sequence<int, W>{},
                                            std::integral_constant<int, 0>{});
      o[2 * i + 1] = detail::interleave_half<W>(v[i], v[i + W / 2], std::make_integer_sequence<int, W>{},
                                                std::integral_constant<int, 1>{});
    }
    for (int i = 0; i < W; ++i) v[i] = o[i];
  }
}
#else
template <int W, typename V>
inline void transpose_square(V (&v)[W]) {
  for (int i = 0; i < W; ++i)
    for (int j = i + 1; j < W; ++j) {
      const auto t = v[i][j];
      v[i][j] = v[j][i];
      v[j][i] = t;
    }
}
#endif

}  // namespace atrous::cpu::ATROUS_CPU_CAPABILITY
