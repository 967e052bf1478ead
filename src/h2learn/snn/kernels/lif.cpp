// Fused multi-step LIF kernels for the CPU: the whole time loop in one pass.
//
// The PyTorch-operator path in neuron.py runs three elementwise kernels per
// time step forward and seven backward (with the reset path), each a full
// pass over one step of the tensors.  Here every block of elements runs all T
// steps with its running state (u[t-1], 1 - o[t-1], du[t+1]) in a small local
// buffer, so each tensor is read or written once per step: the work becomes
// memory-bound on the tensors that must exist anyway (input, spikes, saved
// state, gradients).
//
// Every operation, and the order in which it rounds, is the one neuron.py's
// operators perform (see _LIFFunction there):
//   forward   u[t] = x[t] + (alpha * u[t-1]) * keep,  keep = 1 - o[t-1] in {0, 1}
//             o[t] = u[t] > v_th
//   backward  h = height * (|u[t] - v_th| < window)
//             s = (g[t] + (-alpha * u[t]) * du[t+1]) * h   (reset path; else g[t] * h)
//             du[t] = s + (alpha * keep[t]) * du[t+1],  keep[t] = 1 - o[t]
// Layout: every [T, ...] tensor is dense with time outermost and all share one
// per-step memory order (neuron.py checks this), so element i of step t lives
// at t * N + i.  A time-invariant input (repeated) is one [N] step.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "lif_step.h"

namespace {

using h2learn::charge;
using h2learn::kMaskBit;
using h2learn::kSpikeBit;
using h2learn::step_du;

constexpr int64_t kBlock = 512;  // elements whose state stays in L1 across the T steps
constexpr int64_t kGrain = 8 * kBlock;

// One block of elements through all T steps.  The template flags take the
// branches out of the inner loops so that the compiler vectorises them.
template <typename scalar_t, bool kKeepsU>
H2LEARN_VECTOR_CLONES void forward_block(const scalar_t* x, scalar_t* spikes, scalar_t* u_saved, uint8_t* state,
                   int64_t steps, int64_t n, int64_t begin, int64_t count, bool repeated,
                   scalar_t alpha, scalar_t v_th, scalar_t window) {
  scalar_t u_prev[kBlock];
  scalar_t keep[kBlock];  // 1 - o[t-1]
  for (int64_t i = 0; i < count; ++i) keep[i] = 0;  // u[0] = 0: nothing to carry into step 1
  for (int64_t i = 0; i < count; ++i) u_prev[i] = 0;
  for (int64_t t = 0; t < steps; ++t) {
    const scalar_t* x_t = x + (repeated ? 0 : t * n) + begin;
    scalar_t* spikes_t = spikes + t * n + begin;
    scalar_t* u_t = kKeepsU ? u_saved + t * n + begin : nullptr;
    uint8_t* state_t = kKeepsU ? nullptr : state + t * n + begin;
    for (int64_t i = 0; i < count; ++i) {
      const scalar_t u = charge(x_t[i], u_prev[i], keep[i], alpha);
      const bool spike = u > v_th;
      spikes_t[i] = spike ? scalar_t(1) : scalar_t(0);
      keep[i] = spike ? scalar_t(0) : scalar_t(1);
      u_prev[i] = u;
      if constexpr (kKeepsU) {
        u_t[i] = u;
      } else {
        const bool in_window = std::abs(u - v_th) < window;
        state_t[i] = static_cast<uint8_t>((in_window ? kMaskBit : 0) | (spike ? kSpikeBit : 0));
      }
    }
  }
}

template <typename scalar_t, bool kKeepsU, bool kRepeated>
H2LEARN_VECTOR_CLONES void backward_block(const scalar_t* grad, const scalar_t* u_saved, const uint8_t* state,
                    scalar_t* grad_x, int64_t steps, int64_t n, int64_t begin, int64_t count,
                    scalar_t alpha, scalar_t v_th, scalar_t window, scalar_t height) {
  scalar_t next[kBlock];   // du[t+1]
  scalar_t total[kBlock];  // sum over t of du[t] (time-invariant input)
  for (int64_t t = steps - 1; t >= 0; --t) {
    const scalar_t* g_t = grad + t * n + begin;
    const scalar_t* u_t = kKeepsU ? u_saved + t * n + begin : nullptr;
    const uint8_t* state_t = kKeepsU ? nullptr : state + t * n + begin;
    scalar_t* out_t = grad_x + (kRepeated ? 0 : t * n) + begin;
    if (t == steps - 1) {
      // du[T+1] = 0, so du[T] = h * g[T] (the added terms would be exact zeros).
      for (int64_t i = 0; i < count; ++i) {
        const scalar_t du = step_du<scalar_t, kKeepsU, kKeepsU>(
            g_t[i], kKeepsU ? u_t[i] : scalar_t(0), kKeepsU ? 0 : state_t[i], scalar_t(0), alpha,
            v_th, window, height);
        next[i] = du;
        if constexpr (kRepeated) total[i] = du;
        else out_t[i] = du;
      }
      continue;
    }
    for (int64_t i = 0; i < count; ++i) {
      const scalar_t du = step_du<scalar_t, kKeepsU, kKeepsU>(
          g_t[i], kKeepsU ? u_t[i] : scalar_t(0), kKeepsU ? 0 : state_t[i], next[i], alpha, v_th,
          window, height);
      next[i] = du;
      if constexpr (kRepeated) total[i] = total[i] + du;
      else out_t[i] = du;
    }
  }
  if constexpr (kRepeated) {
    for (int64_t i = 0; i < count; ++i) grad_x[begin + i] = total[i];
  }
}

template <typename Block>
void for_blocks(int64_t n, const Block& block) {
  at::parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b += kBlock) block(b, std::min(kBlock, hi - b));
  });
}

void lif_forward(const at::Tensor& x, const at::Tensor& spikes, const at::Tensor& saved,
                 int64_t steps, bool repeated, double alpha, double v_th, double window) {
  const int64_t n = spikes.numel() / steps;
  const bool keeps_u = saved.scalar_type() != at::kByte;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "h2learn_lif_forward", [&] {
    const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
    scalar_t* spikes_ptr = spikes.mutable_data_ptr<scalar_t>();
    const auto a = static_cast<scalar_t>(alpha);
    const auto th = static_cast<scalar_t>(v_th);
    const auto w = static_cast<scalar_t>(window);
    scalar_t* u_ptr = keeps_u ? saved.mutable_data_ptr<scalar_t>() : nullptr;
    uint8_t* state_ptr = keeps_u ? nullptr : saved.mutable_data_ptr<uint8_t>();
    auto run = [&](auto keeps_u_tag) {
      constexpr bool kKeepsU = decltype(keeps_u_tag)::value;
      for_blocks(n, [&](int64_t b, int64_t count) {
        forward_block<scalar_t, kKeepsU>(x_ptr, spikes_ptr, u_ptr, state_ptr, steps, n, b, count,
                                         repeated, a, th, w);
      });
    };
    if (keeps_u) run(std::true_type{});
    else run(std::false_type{});
  });
}

void lif_backward(const at::Tensor& grad, const at::Tensor& saved, const at::Tensor& grad_x,
                  bool repeated, double alpha, double v_th, double window, double height) {
  const int64_t steps = saved.size(0);
  const int64_t n = saved.numel() / steps;
  const bool keeps_u = saved.scalar_type() != at::kByte;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "h2learn_lif_backward", [&] {
    const scalar_t* grad_ptr = grad.const_data_ptr<scalar_t>();
    scalar_t* out_ptr = grad_x.mutable_data_ptr<scalar_t>();
    const auto a = static_cast<scalar_t>(alpha);
    const auto th = static_cast<scalar_t>(v_th);
    const auto w = static_cast<scalar_t>(window);
    const auto h = static_cast<scalar_t>(height);
    const scalar_t* u_ptr = keeps_u ? saved.const_data_ptr<scalar_t>() : nullptr;
    const uint8_t* state_ptr = keeps_u ? nullptr : saved.const_data_ptr<uint8_t>();
    auto run = [&](auto keeps_u_tag, auto repeated_tag) {
      constexpr bool kKeepsU = decltype(keeps_u_tag)::value;
      constexpr bool kRepeated = decltype(repeated_tag)::value;
      for_blocks(n, [&](int64_t b, int64_t count) {
        backward_block<scalar_t, kKeepsU, kRepeated>(grad_ptr, u_ptr, state_ptr, out_ptr, steps,
                                                     n, b, count, a, th, w, h);
      });
    };
    using Yes = std::true_type;
    using No = std::false_type;
    if (keeps_u && repeated) run(Yes{}, Yes{});
    else if (keeps_u) run(Yes{}, No{});
    else if (repeated) run(No{}, Yes{});
    else run(No{}, No{});
  });
}

}  // namespace

TORCH_LIBRARY(h2learn_lif, m) {
  m.def(
      "forward(Tensor x, Tensor(a!) spikes, Tensor(b!) saved, int steps, bool repeated, "
      "float alpha, float v_th, float window) -> ()");
  m.def(
      "backward(Tensor grad, Tensor saved, Tensor(a!) grad_x, bool repeated, float alpha, "
      "float v_th, float window, float height) -> ()");
}

TORCH_LIBRARY_IMPL(h2learn_lif, CPU, m) {
  m.impl("forward", &lif_forward);
  m.impl("backward", &lif_backward);
}
