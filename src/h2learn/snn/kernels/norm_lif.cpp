// Batch norm (training mode, batch statistics) fused with the multi-step LIF
// neuron that fires on its output: the block conv/fc -> batch norm -> LIF.
//
// Unfused, batch norm writes its normalised output z, the LIF kernel reads z
// and writes the spikes and its saved potential u, and the backward passes
// read u and write dz, then read dz and y (batch norm's input) twice and
// write dy.  Here (y: batch norm's input, per channel c: scale = gamma *
// invstd, shift = beta - mean * scale):
//
//   stats      two passes over y: per-channel mean, then the centred squares
//              (the biased variance), accumulated in double;
//   forward    z = y * scale + shift charges the neuron, which writes only the
//              spikes: nothing but y (kept anyway) is saved for backward;
//   backward   per block of elements, u[1..T] is recomputed from y in a small
//              buffer (bit for bit the forward pass's values), then the BPTT
//              loop writes dz and accumulates sum(dz) and sum(dz * y_hat)
//              per channel, y_hat = (y - mean) * invstd;
//   input_grad dy = dz * k + y * b + d with per-channel k, b, d (batch norm's
//              input gradient, rearranged), in place over dz.
//
// Optionally a max or average pooling over windows that tile the map runs
// behind the neurons (see Pool below): the spikes are pooled as they are
// produced and the pooled gradient is routed back inside the BPTT loop, so
// neither the unpooled spikes nor their gradient are ever stored.
//
// Without batch norm (a block conv/fc (+ bias) -> LIF) the same kernels run
// with scale = 1 and shift = the bias: z = y * 1 + bias is exactly y + bias;
// the caller then skips `stats` and `input_grad` (dy = dz), and sum(dz) is the
// bias gradient.  A time-invariant input
// (`repeated`) is one step of y used at every step.
//
// Layout: y, spikes and gradients are dense [T, rows, C] with the channel
// innermost (an [N, C] fc activation, or an NHWC conv activation: rows =
// B * H * W per step).  Every block of work is a whole number of rows, so the
// per-channel coefficients of a block are one fixed pattern.  Per-channel sums
// are formed per part (a fixed split of the rows, independent of the number
// of threads) and added in part order: the results are deterministic.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "lif_step.h"
#include "pool_step.h"

namespace {

using h2learn::charge;
using h2learn::step_du;

constexpr int64_t kBlockElements = 512;  // elements whose state stays in L1 across the T steps
constexpr int64_t kMaxParts = 64;

// The channel-innermost geometry of y: rows of `channels` elements per step.
// `repeated`: y is one step's input, the same at every step (a time-invariant
// input); the spikes and the gradient from above still have T steps.
struct Rows {
  int64_t steps, rows, channels;
  bool repeated;
  int64_t block_rows() const { return std::max<int64_t>(1, kBlockElements / channels); }
  int64_t step_elements() const { return rows * channels; }
  int64_t y_step() const { return repeated ? 0 : step_elements(); }
};

Rows rows_of(const at::Tensor& y, int64_t steps, int64_t channels, bool repeated) {
  return {steps, y.numel() / ((repeated ? 1 : steps) * channels), channels, repeated};
}

// `values` (one per channel) repeated over `count` rows: the coefficients of a block.
template <typename scalar_t>
std::vector<scalar_t> row_pattern(const scalar_t* values, int64_t channels, int64_t count) {
  std::vector<scalar_t> out(count * channels);
  for (int64_t r = 0; r < count; ++r) std::copy(values, values + channels, out.data() + r * channels);
  return out;
}

// Rows [0, rows) split into `parts` contiguous ranges, part p being [lo, hi).
std::pair<int64_t, int64_t> part_range(int64_t rows, int64_t parts, int64_t p) {
  return {rows * p / parts, rows * (p + 1) / parts};
}

// acc[c] += row[c] (kCentred: (row[c] - mean[c])^2), in double.
template <typename scalar_t, bool kCentred>
H2LEARN_VECTOR_CLONES void add_row(double* __restrict__ acc, const scalar_t* __restrict__ row,
             const double* __restrict__ mean, int64_t channels) {
  for (int64_t c = 0; c < channels; ++c) {
    double v = static_cast<double>(row[c]);
    if constexpr (kCentred) {
      v = v - mean[c];
      v = v * v;
    }
    acc[c] += v;
  }
}

// Per-channel sums over all rows (of the values, or of their squared
// deviations from `mean`), in double, deterministic; out[c] = sum / rows.
template <typename scalar_t, bool kCentred>
void channel_means(const scalar_t* y, int64_t rows, int64_t channels, const double* mean,
                   double* out) {
  const int64_t parts = std::max<int64_t>(1, std::min(kMaxParts, rows));
  std::vector<double> acc(parts * channels, 0.0);
  at::parallel_for(0, parts, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      double* a = acc.data() + p * channels;
      const auto [r0, r1] = part_range(rows, parts, p);
      for (int64_t r = r0; r < r1; ++r) add_row<scalar_t, kCentred>(a, y + r * channels, mean, channels);
    }
  });
  for (int64_t c = 0; c < channels; ++c) out[c] = 0.0;
  for (int64_t p = 0; p < parts; ++p)
    for (int64_t c = 0; c < channels; ++c) out[c] += acc[p * channels + c];
  for (int64_t c = 0; c < channels; ++c) out[c] /= static_cast<double>(rows);
}

void stats(const at::Tensor& y, int64_t channels, const at::Tensor& mean, const at::Tensor& var) {
  const int64_t rows = y.numel() / channels;
  double* mean_ptr = mean.mutable_data_ptr<double>();
  double* var_ptr = var.mutable_data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "h2learn_norm_stats", [&] {
    const scalar_t* y_ptr = y.const_data_ptr<scalar_t>();
    channel_means<scalar_t, false>(y_ptr, rows, channels, nullptr, mean_ptr);
    channel_means<scalar_t, true>(y_ptr, rows, channels, mean_ptr, var_ptr);  // biased variance
  });
}

// One step of one block: u[t] from z = y * scale + shift and the running
// state; writes the spikes (forward) or, with kRecomputes, the potentials.
template <typename scalar_t, bool kRecomputes>
H2LEARN_VECTOR_CLONES void charge_step(const scalar_t* __restrict__ y,
                                       const scalar_t* __restrict__ scale,
                                       const scalar_t* __restrict__ shift,
                                       scalar_t* __restrict__ u_prev, scalar_t* __restrict__ keep,
                                       scalar_t* __restrict__ out, int64_t count, scalar_t alpha,
                                       scalar_t v_th) {
  for (int64_t i = 0; i < count; ++i) {
    scalar_t z = y[i] * scale[i];
    z = z + shift[i];
    const scalar_t u = charge(z, u_prev[i], keep[i], alpha);
    const bool spike = u > v_th;
    keep[i] = spike ? scalar_t(0) : scalar_t(1);
    u_prev[i] = u;
    if constexpr (kRecomputes) out[i] = u;
    else out[i] = spike ? scalar_t(1) : scalar_t(0);
  }
}

// Max pooling fused behind the neuron (0: none): k x k windows at stride k
// over an NHWC map `width` positions wide, whose height is a multiple of k.
// A block is then one band of k image rows, k * width positions, so that it
// holds whole windows: its spikes are pooled as they are produced and never
// stored, and its spike gradient is expanded from the pooled gradient.
// `planar`: the pooled output (and its gradient) is NCHW-contiguous instead of
// NHWC, for a consumer that flattens it in PyTorch's (C, H, W) order; the
// argmax bytes stay NHWC, internal to the kernel.
// `average`: average pooling (sum of the window's spikes / k^2, as PyTorch's
// avg_pool2d; the gradient / k^2 to every position), else max pooling.
struct Pool {
  int64_t kernel, height, width;
  bool planar;
  bool average;
  bool on() const { return kernel > 0; }
  int64_t out_height() const { return height / kernel; }
  int64_t out_width() const { return width / kernel; }
  // The band [0, k) x [0, width) of one sample as pool_step.h's geometry.
  h2learn::Geometry band(int64_t channels) const {
    return {1, channels, kernel, width, 1, width / kernel, kernel, kernel};
  }
};

int64_t block_rows(const Rows& g, const Pool& pool) {
  return pool.on() ? pool.kernel * pool.width : g.block_rows();
}

// The rows of every step cut into blocks of at most `block` rows.
struct Blocks {
  int64_t block, count;
  Blocks(const Rows& g, const Pool& pool)
      : block(block_rows(g, pool)), count((g.rows + block - 1) / block) {}
};

// One band's pooled row between the NHWC order of `row` [OW, C] and the
// NCHW tensor `planar` [T * B, C, OH, OW]: kToPlanar writes it there, else
// reads it from there.
template <typename scalar_t, bool kToPlanar>
void planar_row(scalar_t* planar, scalar_t* row, const Rows& g, const Pool& pool, int64_t t,
                int64_t band) {
  const int64_t samples = g.rows / (pool.height * pool.width);  // per step
  const int64_t n = t * samples + band / pool.out_height();
  const int64_t oh = band % pool.out_height();
  const int64_t ow_count = pool.out_width();
  for (int64_t c = 0; c < g.channels; ++c) {
    scalar_t* plane = planar + ((n * g.channels + c) * pool.out_height() + oh) * ow_count;
    for (int64_t ow = 0; ow < ow_count; ++ow) {
      if constexpr (kToPlanar) plane[ow] = row[ow * g.channels + c];
      else row[ow * g.channels + c] = plane[ow];
    }
  }
}

// Average pooling of one band (k image rows of an NHWC map `width` wide) into
// its pooled row [width / k, C]: the window sums of 0/1 spikes are exact, then
// divided by k^2 once, as PyTorch's avg_pool2d does.
template <typename scalar_t>
H2LEARN_VECTOR_CLONES void average_row(const scalar_t* __restrict__ band,
                                       scalar_t* __restrict__ pooled, int64_t channels,
                                       int64_t kernel, int64_t width) {
  const scalar_t divisor = static_cast<scalar_t>(kernel * kernel);
  for (int64_t ow = 0; ow < width / kernel; ++ow) {
    scalar_t* out = pooled + ow * channels;
    for (int64_t c = 0; c < channels; ++c) out[c] = 0;
    for (int64_t kh = 0; kh < kernel; ++kh)
      for (int64_t kw = 0; kw < kernel; ++kw) {
        const scalar_t* in = band + (kh * width + ow * kernel + kw) * channels;
        for (int64_t c = 0; c < channels; ++c) out[c] = out[c] + in[c];
      }
    for (int64_t c = 0; c < channels; ++c) out[c] = out[c] / divisor;
  }
}

// The spike gradient of a band from its pooled gradient: every position gets
// its window's gradient / k^2 (PyTorch's avg_pool2d backward).
template <typename scalar_t>
H2LEARN_VECTOR_CLONES void average_grad(const scalar_t* __restrict__ pooled,
                                        scalar_t* __restrict__ band, int64_t channels,
                                        int64_t kernel, int64_t width) {
  const scalar_t divisor = static_cast<scalar_t>(kernel * kernel);
  for (int64_t iw = 0; iw < width; ++iw) {
    const scalar_t* from = pooled + (iw / kernel) * channels;
    scalar_t* to = band + iw * channels;
    for (int64_t c = 0; c < channels; ++c) to[c] = from[c] / divisor;
  }
  for (int64_t kh = 1; kh < kernel; ++kh)
    std::copy(band, band + width * channels, band + kh * width * channels);
}

template <typename scalar_t>
void forward_typed(const at::Tensor& y, const at::Tensor& scale, const at::Tensor& shift,
                   const at::Tensor& out, const at::Tensor& index, const Rows& g, const Pool& pool,
                   scalar_t alpha, scalar_t v_th) {
  const scalar_t* y_ptr = y.const_data_ptr<scalar_t>();
  scalar_t* out_ptr = out.mutable_data_ptr<scalar_t>();
  uint8_t* index_ptr = pool.on() && !pool.average ? index.mutable_data_ptr<uint8_t>() : nullptr;
  const Blocks blocks(g, pool);
  const int64_t width = blocks.block * g.channels;
  const auto a = row_pattern(scale.const_data_ptr<scalar_t>(), g.channels, blocks.block);
  const auto b = row_pattern(shift.const_data_ptr<scalar_t>(), g.channels, blocks.block);
  const int64_t pooled_block = pool.on() ? width / (pool.kernel * pool.kernel) : 0;
  const int64_t pooled_step = blocks.count * pooled_block;
  at::parallel_for(0, blocks.count, 1, [&](int64_t lo, int64_t hi) {
    // u[t-1], 1 - o[t-1], a band's spikes, its pooled row (NHWC)
    std::vector<scalar_t> scratch(3 * width + pooled_block);
    scalar_t* u_prev = scratch.data();
    scalar_t* keep = u_prev + width;
    scalar_t* band = keep + width;
    scalar_t* pooled_row = band + width;
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t begin = blk * width;
      const int64_t count = std::min(blocks.block, g.rows - blk * blocks.block) * g.channels;
      std::fill(keep, keep + count, scalar_t(0));  // u[0] = 0: nothing to carry into step 1
      std::fill(u_prev, u_prev + count, scalar_t(0));
      for (int64_t t = 0; t < g.steps; ++t) {
        const scalar_t* y_t = y_ptr + t * g.y_step() + begin;
        if (!pool.on()) {
          charge_step<scalar_t, false>(y_t, a.data(), b.data(), u_prev, keep,
                                       out_ptr + t * g.step_elements() + begin, count, alpha, v_th);
          continue;
        }
        charge_step<scalar_t, false>(y_t, a.data(), b.data(), u_prev, keep, band, count, alpha,
                                     v_th);
        const int64_t o = t * pooled_step + blk * pooled_block;
        scalar_t* pooled = pool.planar ? pooled_row : out_ptr + o;
        if (pool.average)
          average_row(static_cast<const scalar_t*>(band), pooled, g.channels, pool.kernel,
                      pool.width);
        else
          h2learn::forward_row(static_cast<const scalar_t*>(band), pooled, index_ptr + o,
                               pool.band(g.channels), 0, 0);
        if (pool.planar) planar_row<scalar_t, true>(out_ptr, pooled_row, g, pool, t, blk);
      }
    }
  });
}

void forward(const at::Tensor& y, const at::Tensor& scale, const at::Tensor& shift,
             const at::Tensor& out, const at::Tensor& index, int64_t steps, bool repeated,
             double alpha, double v_th, int64_t pool_kernel, int64_t height, int64_t width,
             bool planar, bool average) {
  const Rows g = rows_of(y, steps, scale.numel(), repeated);
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "h2learn_norm_lif_forward", [&] {
    forward_typed<scalar_t>(y, scale, shift, out, index, g, Pool{pool_kernel, height, width, planar, average},
                            static_cast<scalar_t>(alpha), static_cast<scalar_t>(v_th));
  });
}

// One time step of the BPTT loop over a block: du[t] (written to out and kept
// in next) and the running per-element sums of du and du * y_hat.
// With kRepeated (a time-invariant input) only sum_dz is kept: the input
// gradient is its total over the steps, and y_hat is the same at every step.
template <typename scalar_t, bool kReset, bool kRepeated>
H2LEARN_VECTOR_CLONES void backward_step(const scalar_t* __restrict__ g, const scalar_t* __restrict__ u,
                   const scalar_t* __restrict__ y, const scalar_t* __restrict__ mean,
                   const scalar_t* __restrict__ invstd, scalar_t* __restrict__ next,
                   scalar_t* __restrict__ out, scalar_t* __restrict__ sum_dz,
                   scalar_t* __restrict__ sum_dz_yhat, int64_t count, scalar_t alpha, scalar_t v_th,
                   scalar_t window, scalar_t height) {
  for (int64_t i = 0; i < count; ++i) {
    const scalar_t du =
        step_du<scalar_t, true, kReset>(g[i], u[i], 0, next[i], alpha, v_th, window, height);
    next[i] = du;
    sum_dz[i] += du;
    if constexpr (!kRepeated) {
      out[i] = du;
      scalar_t y_hat = y[i] - mean[i];
      y_hat = y_hat * invstd[i];
      sum_dz_yhat[i] += du * y_hat;
    }
  }
}

struct Surrogate {
  double alpha, v_th, window, height;
};

template <typename scalar_t, bool kReset, bool kRepeated>
void backward_typed(const at::Tensor& grad, const at::Tensor& index, const at::Tensor& y,
                    const at::Tensor& scale, const at::Tensor& shift, const at::Tensor& mean,
                    const at::Tensor& invstd, const at::Tensor& grad_z, const at::Tensor& sums,
                    int64_t steps, const Surrogate& p, const Pool& pool) {
  const Rows g = rows_of(y, steps, scale.numel(), kRepeated);
  const auto alpha = static_cast<scalar_t>(p.alpha);
  const auto v_th = static_cast<scalar_t>(p.v_th);
  const auto window = static_cast<scalar_t>(p.window);
  const auto height = static_cast<scalar_t>(p.height);
  const scalar_t* grad_ptr = grad.const_data_ptr<scalar_t>();
  const uint8_t* index_ptr =
      pool.on() && !pool.average ? index.const_data_ptr<uint8_t>() : nullptr;
  const scalar_t* y_ptr = y.const_data_ptr<scalar_t>();
  scalar_t* out_ptr = grad_z.mutable_data_ptr<scalar_t>();
  const Blocks blocks(g, pool);
  const int64_t width = blocks.block * g.channels;
  const int64_t pooled_block = pool.on() ? width / (pool.kernel * pool.kernel) : 0;
  const int64_t pooled_step = blocks.count * pooled_block;
  const auto a = row_pattern(scale.const_data_ptr<scalar_t>(), g.channels, blocks.block);
  const auto b = row_pattern(shift.const_data_ptr<scalar_t>(), g.channels, blocks.block);
  const auto m = row_pattern(mean.const_data_ptr<scalar_t>(), g.channels, blocks.block);
  const auto s = row_pattern(invstd.const_data_ptr<scalar_t>(), g.channels, blocks.block);
  const int64_t parts = std::max<int64_t>(1, std::min(kMaxParts, blocks.count));
  std::vector<double> acc(parts * 2 * g.channels, 0.0);  // per part: sum dz, sum dz * y_hat
  at::parallel_for(0, parts, 1, [&](int64_t lo, int64_t hi) {
    std::vector<scalar_t> u(g.steps * width);
    // du[t+1], u[t-1] and 1 - o[t-1] (recomputing), a band's spike gradient,
    // then per element the sums over its T steps of du and du * y_hat (T
    // terms in scalar_t, added per channel into the part's double sums).
    std::vector<scalar_t> scratch(7 * width);
    scalar_t* next = scratch.data();
    scalar_t* u_prev = next + width;
    scalar_t* keep = u_prev + width;
    scalar_t* band_grad = keep + width;
    scalar_t* sum_dz = band_grad + width;
    scalar_t* sum_dzx = sum_dz + width;
    scalar_t* pooled_grad = sum_dzx + width;  // a band's pooled gradient, NHWC
    for (int64_t part = lo; part < hi; ++part) {
      const auto [b0, b1] = part_range(blocks.count, parts, part);
      double* part_dz = acc.data() + part * 2 * g.channels;
      double* part_dzx = part_dz + g.channels;
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t nrows = std::min(blocks.block, g.rows - blk * blocks.block);
        const int64_t count = nrows * g.channels;
        const int64_t begin = blk * width;
        std::fill(keep, keep + count, scalar_t(0));
        std::fill(u_prev, u_prev + count, scalar_t(0));
        for (int64_t t = 0; t < g.steps; ++t)  // u[1..T], bit for bit the forward pass's
          charge_step<scalar_t, true>(y_ptr + t * g.y_step() + begin, a.data(), b.data(), u_prev,
                                      keep, u.data() + t * count, count, alpha, v_th);
        std::fill(next, next + count, scalar_t(0));  // du[T+1] = 0
        std::fill(sum_dz, sum_dz + count, scalar_t(0));
        std::fill(sum_dzx, sum_dzx + count, scalar_t(0));
        for (int64_t t = g.steps - 1; t >= 0; --t) {
          const int64_t offset = t * g.step_elements() + begin;
          const scalar_t* g_t = grad_ptr + offset;
          if (pool.on()) {  // the pooled gradient, routed to each window's argmax
            const int64_t o = t * pooled_step + blk * pooled_block;
            const scalar_t* pooled = grad_ptr + o;
            if (pool.planar) {
              planar_row<scalar_t, false>(const_cast<scalar_t*>(grad_ptr), pooled_grad, g, pool, t,
                                          blk);
              pooled = pooled_grad;
            }
            if (pool.average)
              average_grad(pooled, band_grad, g.channels, pool.kernel, pool.width);
            else
              for (int64_t kh = 0; kh < pool.kernel; ++kh)
                h2learn::backward_row(pooled, index_ptr + o, band_grad, pool.band(g.channels), 0,
                                      kh);
            g_t = band_grad;
          }
          backward_step<scalar_t, kReset, kRepeated>(
              g_t, u.data() + t * count, y_ptr + t * g.y_step() + begin, m.data(), s.data(), next,
              kRepeated ? nullptr : out_ptr + offset, sum_dz, sum_dzx, count, alpha, v_th, window,
              height);
        }
        if constexpr (kRepeated) {
          for (int64_t i = 0; i < count; ++i) out_ptr[begin + i] = sum_dz[i];
          for (int64_t i = 0; i < count; ++i) {
            scalar_t y_hat = y_ptr[begin + i] - m[i];
            y_hat = y_hat * s[i];
            sum_dzx[i] = sum_dz[i] * y_hat;
          }
        }
        for (int64_t row = 0; row < nrows; ++row) {
          for (int64_t c = 0; c < g.channels; ++c) {
            part_dz[c] += sum_dz[row * g.channels + c];
            part_dzx[c] += sum_dzx[row * g.channels + c];
          }
        }
      }
    }
  });
  double* sums_ptr = sums.mutable_data_ptr<double>();
  for (int64_t i = 0; i < 2 * g.channels; ++i) sums_ptr[i] = 0.0;
  for (int64_t part = 0; part < parts; ++part)
    for (int64_t i = 0; i < 2 * g.channels; ++i) sums_ptr[i] += acc[part * 2 * g.channels + i];
}

void backward(const at::Tensor& grad, const at::Tensor& index, const at::Tensor& y,
              const at::Tensor& scale, const at::Tensor& shift, const at::Tensor& mean,
              const at::Tensor& invstd, const at::Tensor& grad_z, const at::Tensor& sums,
              int64_t steps, double alpha, double v_th, double window, double height,
              bool reset_grad, bool repeated, int64_t pool_kernel, int64_t map_height,
              int64_t width, bool planar, bool average) {
  const Surrogate p{alpha, v_th, window, height};
  const Pool pool{pool_kernel, map_height, width, planar, average};
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "h2learn_norm_lif_backward", [&] {
    auto run = [&](auto reset_tag, auto repeated_tag) {
      backward_typed<scalar_t, decltype(reset_tag)::value, decltype(repeated_tag)::value>(
          grad, index, y, scale, shift, mean, invstd, grad_z, sums, steps, p, pool);
    };
    using Yes = std::true_type;
    using No = std::false_type;
    if (reset_grad && repeated) run(Yes{}, Yes{});
    else if (reset_grad) run(Yes{}, No{});
    else if (repeated) run(No{}, Yes{});
    else run(No{}, No{});
  });
}

// grad <- grad * k + y * b + d, per channel (the innermost dimension).
template <typename scalar_t>
H2LEARN_VECTOR_CLONES void input_grad_row(scalar_t* __restrict__ grad,
                                          const scalar_t* __restrict__ y,
                                          const scalar_t* __restrict__ k,
                                          const scalar_t* __restrict__ b,
                                          const scalar_t* __restrict__ d, int64_t channels) {
  for (int64_t c = 0; c < channels; ++c) {
    scalar_t v = grad[c] * k[c];
    v = v + y[c] * b[c];
    grad[c] = v + d[c];
  }
}

void input_grad(const at::Tensor& grad, const at::Tensor& y, const at::Tensor& k,
                const at::Tensor& b, const at::Tensor& d) {
  const int64_t channels = k.numel();
  const int64_t rows = y.numel() / channels;
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "h2learn_norm_input_grad", [&] {
    scalar_t* g_ptr = grad.mutable_data_ptr<scalar_t>();
    const scalar_t* y_ptr = y.const_data_ptr<scalar_t>();
    const scalar_t* k_ptr = k.const_data_ptr<scalar_t>();
    const scalar_t* b_ptr = b.const_data_ptr<scalar_t>();
    const scalar_t* d_ptr = d.const_data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, 4 * kBlockElements / channels);
    at::parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r)
        input_grad_row(g_ptr + r * channels, y_ptr + r * channels, k_ptr, b_ptr, d_ptr, channels);
    });
  });
}

}  // namespace

TORCH_LIBRARY(h2learn_norm_lif, m) {
  m.def("stats(Tensor y, int channels, Tensor(a!) mean, Tensor(b!) var) -> ()");
  m.def(
      "forward(Tensor y, Tensor scale, Tensor shift, Tensor(a!) out, Tensor(b!) index, int steps, "
      "bool repeated, float alpha, float v_th, int pool_kernel, int height, int width, "
      "bool planar, bool average) -> ()");
  m.def(
      "backward(Tensor grad, Tensor index, Tensor y, Tensor scale, Tensor shift, Tensor mean, "
      "Tensor invstd, Tensor(a!) grad_z, Tensor(b!) sums, int steps, float alpha, float v_th, "
      "float window, float height, bool reset_grad, bool repeated, int pool_kernel, int map_height, "
      "int width, bool planar, bool average) -> ()");
  m.def("input_grad(Tensor(a!) grad, Tensor y, Tensor k, Tensor b, Tensor d) -> ()");
}

TORCH_LIBRARY_IMPL(h2learn_norm_lif, CPU, m) {
  m.impl("stats", &stats);
  m.impl("forward", &forward);
  m.impl("backward", &backward);
  m.impl("input_grad", &input_grad);
}
