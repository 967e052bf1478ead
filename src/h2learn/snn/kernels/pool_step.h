// Max pooling of one output row over non-overlapping windows (stride >=
// kernel, no padding) in the channels-last (NHWC) layout, with one byte per
// output for the argmax's position in its window: shared by pool.cpp (pooling
// a tensor) and norm_lif.cpp (pooling the spikes of a band of rows as they are
// produced).  See pool.cpp for the argmax rule.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lif_step.h"  // H2LEARN_VECTOR_CLONES

namespace h2learn {
namespace {  // internal linkage: each file that includes this has its own copies

constexpr int64_t kMaxChannels = 1024;  // channels pooled per pass with their state on the stack

// x [n, h, w, c] pooled with k x k windows at stride s into [n, oh, ow, c].
struct Geometry {
  int64_t n, c, h, w, oh, ow, k, s;
};

template <typename scalar_t>
H2LEARN_VECTOR_CLONES void forward_row(const scalar_t* x, scalar_t* out, uint8_t* index, const Geometry& g, int64_t n,
                 int64_t oh) {
  scalar_t best[kMaxChannels];
  uint8_t where[kMaxChannels];
  for (int64_t ow = 0; ow < g.ow; ++ow) {
    for (int64_t c0 = 0; c0 < g.c; c0 += kMaxChannels) {
      const int64_t count = std::min(kMaxChannels, g.c - c0);
      for (int64_t kh = 0; kh < g.k; ++kh) {
        for (int64_t kw = 0; kw < g.k; ++kw) {
          const int64_t ih = oh * g.s + kh;
          const int64_t iw = ow * g.s + kw;
          const scalar_t* in = x + ((n * g.h + ih) * g.w + iw) * g.c + c0;
          const auto position = static_cast<uint8_t>(kh * g.k + kw);
          if (kh == 0 && kw == 0) {
            for (int64_t i = 0; i < count; ++i) best[i] = in[i];
            for (int64_t i = 0; i < count; ++i) where[i] = 0;
            continue;
          }
          for (int64_t i = 0; i < count; ++i) {
            const scalar_t v = in[i];
            const bool take = (v > best[i]) || std::isnan(v);
            best[i] = take ? v : best[i];
            where[i] = take ? position : where[i];
          }
        }
      }
      const int64_t o = ((n * g.oh + oh) * g.ow + ow) * g.c + c0;
      for (int64_t i = 0; i < count; ++i) out[o + i] = best[i];
      for (int64_t i = 0; i < count; ++i) index[o + i] = where[i];
    }
  }
}

template <typename scalar_t>
H2LEARN_VECTOR_CLONES void backward_row(const scalar_t* grad, const uint8_t* index, scalar_t* grad_x, const Geometry& g,
                  int64_t n, int64_t ih) {
  scalar_t* row = grad_x + (n * g.h + ih) * g.w * g.c;
  const int64_t oh = ih / g.s;
  const int64_t kh = ih % g.s;
  if (oh >= g.oh || kh >= g.k) {  // a row that no window covers
    for (int64_t i = 0; i < g.w * g.c; ++i) row[i] = 0;
    return;
  }
  for (int64_t iw = 0; iw < g.w; ++iw) {
    scalar_t* to = row + iw * g.c;
    const int64_t ow = iw / g.s;
    const int64_t kw = iw % g.s;
    if (ow >= g.ow || kw >= g.k) {
      for (int64_t i = 0; i < g.c; ++i) to[i] = 0;
      continue;
    }
    const int64_t o = ((n * g.oh + oh) * g.ow + ow) * g.c;
    const auto position = static_cast<uint8_t>(kh * g.k + kw);
    const scalar_t* from = grad + o;
    const uint8_t* at = index + o;
    const scalar_t zero = 0;
    for (int64_t i = 0; i < g.c; ++i) {
      const scalar_t value = from[i];  // loaded unconditionally: the loop stays branch-free
      to[i] = at[i] == position ? value : zero;
    }
  }
}

}  // namespace
}  // namespace h2learn
