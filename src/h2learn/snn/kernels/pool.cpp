// Max pooling over non-overlapping windows (stride >= kernel, no padding) for
// channels-last (NHWC) CPU tensors, keeping one byte per output: the argmax's
// position inside its window.
//
// PyTorch's own path (max_pool2d_with_indices, then a scatter_ into a zeroed
// gradient) writes 64-bit indices, converts them, zero-fills the whole input
// gradient and scatters into it: five passes over activation-sized tensors.
// Here the forward pass reads the input once and writes the output and the
// byte indices; the backward pass writes every input-gradient element exactly
// once (the gradient at the argmax, zero elsewhere).
//
// The argmax is PyTorch's: windows are scanned row by row and an element
// replaces the running maximum when it is greater or NaN, so the first of
// equal maxima wins (as in aten/src/ATen/native/cpu/MaxPoolKernel.cpp).  Each
// input position lies in at most one window, so the backward pass is the same
// as PyTorch's scatter, value for value.
//
// Layout: x [N, H, W, C] dense (channels-last strides of an [N, C, H, W]
// tensor), out and index [N, OH, OW, C] dense, OH = (H - k) / s + 1.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "pool_step.h"

namespace {

using h2learn::backward_row;
using h2learn::forward_row;
using h2learn::Geometry;

Geometry geometry(const at::Tensor& x, const at::Tensor& out, int64_t kernel, int64_t stride) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), out.size(2), out.size(3), kernel, stride};
}

void max_pool_forward(const at::Tensor& x, const at::Tensor& out, const at::Tensor& index,
                      int64_t kernel, int64_t stride) {
  const Geometry g = geometry(x, out, kernel, stride);
  uint8_t* index_ptr = index.mutable_data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "h2learn_max_pool_forward", [&] {
    const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
    scalar_t* out_ptr = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, g.n * g.oh, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) forward_row(x_ptr, out_ptr, index_ptr, g, r / g.oh, r % g.oh);
    });
  });
}

void max_pool_backward(const at::Tensor& grad, const at::Tensor& index, const at::Tensor& grad_x,
                       int64_t kernel, int64_t stride) {
  const Geometry g = geometry(grad_x, grad, kernel, stride);
  const uint8_t* index_ptr = index.const_data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "h2learn_max_pool_backward", [&] {
    const scalar_t* grad_ptr = grad.const_data_ptr<scalar_t>();
    scalar_t* out_ptr = grad_x.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, g.n * g.h, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) backward_row(grad_ptr, index_ptr, out_ptr, g, r / g.h, r % g.h);
    });
  });
}

}  // namespace

TORCH_LIBRARY(h2learn_pool, m) {
  m.def(
      "max_pool_forward(Tensor x, Tensor(a!) out, Tensor(b!) index, int kernel, int stride) -> ()");
  m.def(
      "max_pool_backward(Tensor grad, Tensor index, Tensor(a!) grad_x, int kernel, int stride) -> ()");
}

TORCH_LIBRARY_IMPL(h2learn_pool, CPU, m) {
  m.impl("max_pool_forward", &max_pool_forward);
  m.impl("max_pool_backward", &max_pool_backward);
}
