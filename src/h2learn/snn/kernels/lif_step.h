// One LIF time step, forward and backward, for one element: shared by lif.cpp
// and norm_lif.cpp so that every kernel charges, fires and back-propagates
// with the same operations in the same order (and so rounds alike).
#pragma once

#include <cmath>
#include <cstdint>

// Hot loops are compiled twice, for AVX2 and for the baseline instruction set,
// and the loader picks the AVX2 copy where the CPU has it (GCC/Clang function
// multi-versioning): twice the vector width without building for one machine.
// AVX2 without FMA: every product and sum still rounds separately.
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define H2LEARN_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef H2LEARN_VECTOR_CLONES
#define H2LEARN_VECTOR_CLONES
#endif

namespace h2learn {

constexpr uint8_t kSpikeBit = 1;
constexpr uint8_t kMaskBit = 2;

// u[t] = x[t] + (alpha * u[t-1]) * keep, keep = 1 - o[t-1] in {0, 1}.
// At step 1 keep = 0 adds an exact zero, leaving x[1] unchanged.
template <typename scalar_t>
__attribute__((always_inline)) inline scalar_t charge(scalar_t x, scalar_t u_prev, scalar_t keep,
                                                      scalar_t alpha) {
  scalar_t decayed = alpha * u_prev;
  decayed = decayed * keep;
  return x + decayed;
}

// du[t] of one element from its gradient g[t], its state and du[t+1].
// kFromU: spike and surrogate mask are derived from u (else read from bits);
// kReset: include the reset path -alpha * u[t] * du[t+1] (needs u).
template <typename scalar_t, bool kFromU, bool kReset>
__attribute__((always_inline)) inline scalar_t step_du(scalar_t g, scalar_t u, uint8_t bits,
                                                       scalar_t next, scalar_t alpha,
                                                       scalar_t v_th, scalar_t window,
                                                       scalar_t height) {
  static_assert(kFromU || !kReset, "the reset path needs u");
  // Both products of each 0/1 choice are formed and one is selected: the same
  // values as multiplying by the 0/1 flag, written so that the compiler keeps
  // the loops that call this branch-free (and vectorises them).
  bool in_window;
  bool spike;
  if constexpr (kFromU) {
    in_window = std::abs(u - v_th) < window;
    spike = u > v_th;
  } else {
    in_window = (bits & kMaskBit) != 0;
    spike = (bits & kSpikeBit) != 0;
  }
  scalar_t s = g;
  if constexpr (kReset) {
    scalar_t reset = -alpha * u;
    reset = reset * next;
    s = s + reset;
  }
  const scalar_t zero = 0;
  s = in_window ? s * height : s * zero;
  const scalar_t carried = spike ? zero * next : alpha * next;
  return s + carried;
}

}  // namespace h2learn
