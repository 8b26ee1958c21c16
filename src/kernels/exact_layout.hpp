// Private to the exact engine: the scaled, zero-padded copies of the inputs that its
// micro-kernels read as contiguous runs (exact_sum.hpp), so the inner loops have no bounds
// checks and no strides. Every value is scaled by 2^shift exactly (exact_sum.hpp scale_by;
// the caller's Scale guarantees it) and, for the sums of magnitudes, taken in absolute value.
#pragma once

#include <omp.h>

#include <cmath>
#include <vector>

#include "exact_sum.hpp"

namespace tapegrad::exact::detail {

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Below this many terms (products summed, over all outputs) a call runs on the calling thread
// only: a parallel region costs more than it saves. The bits are the same either way.
constexpr double min_parallel_terms = 1 << 16;
inline bool parallel_worth(index_t outputs, index_t terms_each) {
  return static_cast<double>(outputs) * static_cast<double>(terms_each) >= min_parallel_terms;
}
inline index_t round_up(index_t a, index_t b) { return ceil_div(a, b) * b; }

inline double scaled(double v, int shift, bool abs) {
  return scale_by(abs ? std::fabs(v) : v, shift);
}

// The image of planes (count, H, W) -- x of a conv2d or a pool, count = N*C -- padded by
// (ph, pw) and split by column phase for a horizontal stride sw:
//   at(plane, hp, phase)[j] = x'[plane][hp - ph][j*sw + phase - pw], zero outside x,
// for padded rows hp < rows = H + 2ph and j < cols. A window sweep reading padded column
// q*sw + s*dw reads phase (s*dw) % sw at j = q + (s*dw) / sw: contiguous in q.
struct PhaseImage {
  index_t rows = 0, sw = 1, cols = 0;
  std::vector<double> data;
  const double* at(index_t plane, index_t hp, index_t phase) const {
    return data.data() + ((plane * rows + hp) * sw + phase) * cols;
  }
  index_t plane_stride() const { return rows * sw * cols; }
  index_t row_stride() const { return sw * cols; }  // one padded row further down
};

inline PhaseImage phase_image(const double* x, index_t count, index_t h, index_t w, index_t ph,
                              index_t pw, index_t sw, index_t cols, int shift, bool abs) {
  PhaseImage img;
  img.rows = h + 2 * ph;
  img.sw = sw;
  img.cols = cols;
  img.data.assign(static_cast<std::size_t>(count * img.plane_stride()), 0.0);
#pragma omp parallel for schedule(static) if (count * h * w >= 65536)
  for (index_t pl = 0; pl < count; ++pl)
    for (index_t hh = 0; hh < h; ++hh)
      for (index_t ww = 0; ww < w; ++ww) {
        const index_t col = ww + pw, phase = col % sw, j = col / sw;
        if (j >= cols) continue;
        double* row = img.data.data() + ((pl * img.rows + hh + ph) * sw + phase) * cols;
        row[j] = scaled(x[(pl * h + hh) * w + ww], shift, abs);
      }
  return img;
}

// The image of dy planes (count, P, Q) spread out by the strides (sh, sw), for the gathers of
// backward-data: at(plane, a + oh)[b + ow] = dy'[plane][a / sh][b / sw] when sh | a and sw | b
// (and the quotient is inside dy), zero otherwise. Rows a + oh < rows, columns b + ow < cols.
struct SpreadImage {
  index_t rows = 0, cols = 0;
  std::vector<double> data;
  const double* at(index_t plane, index_t row) const {
    return data.data() + (plane * rows + row) * cols;
  }
};

inline SpreadImage spread_image(const double* dy, index_t count, index_t p, index_t q, index_t sh,
                                index_t sw, index_t oh, index_t ow, index_t rows, index_t cols,
                                int shift, bool abs) {
  SpreadImage img;
  img.rows = rows;
  img.cols = cols;
  img.data.assign(static_cast<std::size_t>(count * rows * cols), 0.0);
#pragma omp parallel for schedule(static) if (count * p * q >= 65536)
  for (index_t pl = 0; pl < count; ++pl)
    for (index_t pp = 0; pp < p; ++pp) {
      const index_t row = pp * sh + oh;
      if (row >= rows) continue;
      for (index_t qq = 0; qq < q; ++qq) {
        const index_t col = qq * sw + ow;
        if (col >= cols) continue;
        img.data[static_cast<std::size_t>((pl * rows + row) * cols + col)] =
            scaled(dy[(pl * p + pp) * q + qq], shift, abs);
      }
    }
  return img;
}

// Rows (count, len) copied to rows of `stride` >= len doubles, zero-padded: the runs of the
// dot kernel and the sources of the row kernel.
inline std::vector<double> padded_rows(const double* v, index_t count, index_t len, index_t stride,
                                       int shift, bool abs) {
  std::vector<double> out(static_cast<std::size_t>(count * stride), 0.0);
#pragma omp parallel for schedule(static) if (count * len >= 65536)
  for (index_t i = 0; i < count; ++i)
    for (index_t j = 0; j < len; ++j)
      out[static_cast<std::size_t>(i * stride + j)] = scaled(v[i * len + j], shift, abs);
  return out;
}

}  // namespace tapegrad::exact::detail
