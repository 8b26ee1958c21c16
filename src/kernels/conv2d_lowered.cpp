// The lowered convolution (see conv2d_lowered.hpp): the plan (tier, tiles, tap offsets), the
// builder of X~, and the drivers of the three directions around the micro-kernels of
// fast_gemm.cpp (LoweredKernels).
#include "conv2d_lowered.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "fast_gemm.hpp"
#include "tapegrad/kernels/activation_fast.hpp"

namespace tapegrad::fast::detail {
namespace {

// Below this much work a call runs on the calling thread only (the same bits either way).
constexpr double min_parallel_flops = 1e6;
// Tasks aim at about this much work: more is coarser load balance, less is scheduling cost.
constexpr double task_flops = 2e5;
// Backward-weights reads its reduction in chunks of about this many vectors per row of the
// tile, so that a chunk of every row of a tile stays in the L1 cache across the tap tiles
// (a panel of 4 rows: 32 KB of 64-byte vectors). The chunk is also how far each tap's input
// is read as one stream: paired runs on an AMD Zen 5 (AVX-512), 1 thread, against 64 steps:
// ResNet 3x3 and LeNet 1.03-1.13x (double and float), VGG 1.01-1.05x, the stem 0.95-0.99x
// (runs of this host vary by 10 %); 2 threads 1.02-1.05x; AVX2 kernels 1.00-1.02x; 256
// steps no better than 128.
constexpr index_t chunk_steps = 128;
// The channels tier's tasks are runs of at least this many output pixels (and whole L x L
// blocks), so that their outputs go out by L x L transposes and row copies.
constexpr index_t chan_run = 48;

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
index_t round_up(index_t a, index_t b) { return ceil_div(a, b) * b; }
// floor(a / b) for b > 0 and any sign of a.
index_t floor_div(index_t a, index_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// X~: `units` x `groups` blocks of ci channels, each channel `plane` elements per lane; an
// element is (unit, group, c, phase, h'', w'', lane) at
//   (((unit*groups + gi)*ci + c)*plane + phase*hq*wq + h''*wq + w'')*lanes + lane
// and holds src[n][gi*ci + c][h''*sh + a - pad_h][w''*sw + b - pad_w] for image
// n = unit*lanes + lane (zero outside src, and for n >= images).
struct Lowering {
  index_t images, c_src, hs, ws;  // the source tensor (N, c_src, hs, ws)
  index_t groups, ci;
  index_t pad_h, pad_w;  // may be negative (a crop)
  index_t sh, sw;        // stride phases
  index_t hq, wq;        // extent of one phase image
  index_t plane;         // >= sh*sw*hq*wq; the rest is zeros
  index_t lanes;         // 1: pixels tier; L: batch tier
  index_t units;         // images (pixels tier) or ceil(images / L) (batch tier)
  index_t size;          // elements to allocate, slack included
  index_t unit_stride() const { return ci * plane * lanes; }  // one (unit, group)
  index_t items() const { return units * groups * ci; }       // planes to build
};

Lowering make_lowering(index_t images, index_t c_src, index_t hs, index_t ws, index_t groups,
                       index_t pad_h, index_t pad_w, index_t sh, index_t sw, index_t hq,
                       index_t wq, index_t plane, index_t lanes) {
  Lowering lw{images, c_src, hs, ws, groups, c_src / groups, pad_h, pad_w, sh, sw, hq, wq,
              plane, lanes, ceil_div(images, lanes), 0};
  lw.size = lw.units * groups * lw.unit_stride();
  return lw;
}

// dst[i] = src[i*stride] for i < n (src and dst do not overlap). Stride 2, the common one, has
// its own loop, which the compiler vectorizes (two loads and a shuffle for each vector; the
// loop of a run-time stride copied one element at a time, 10 % of the ResNet stem's forward).
template <class T>
void strided_copy(const T* __restrict src, index_t stride, T* __restrict dst, index_t n) {
  if (stride == 2)
    for (index_t i = 0; i < n; ++i) dst[i] = src[2 * i];
  else
    for (index_t i = 0; i < n; ++i) dst[i] = src[i * stride];
}

// Fills X~ from src (zeros where no source element maps, slack zeroed too). In the batch tier
// a full group of L images is first transposed plane by plane (L x L vector blocks over the
// hs*ws pixels of the channel, contiguous in every image) into a pixel-major buffer, whose rows
// of L-lane vectors are then copied into place; a partial group goes element by element.
// Item `it` < items() is one (unit, group, channel) plane; build_slack zeroes what follows.
template <class T>
void build_item(const Lowering& lw, const T* src, T* out, index_t it) {
  const LoweredKernels<T>& lk = lowered_kernels<T>();
  const index_t L = lw.lanes, hw = lw.hq * lw.wq;
  const index_t image = lw.c_src * lw.hs * lw.ws;  // src elements per image
  const index_t pixels = lw.hs * lw.ws;
  {
    const index_t unit = it / (lw.groups * lw.ci), ch = it % (lw.groups * lw.ci);
    T* o = out + it * lw.plane * L;
    // every element of the plane is written once: the copied rows' columns [lo, hi), zeros
    // around them and in the rows and the tail no source element maps to (a fill of the
    // whole plane before the copy was 1.5 % of LeNet conv2's forward, the copy another 1.4 %)
    std::fill(o + lw.sh * lw.sw * hw * L, o + lw.plane * L, T(0));
    const index_t lanes = std::min(L, lw.images - unit * L);
    const T* s0 = src + (unit * L * lw.c_src + ch) * pixels;  // image unit*L, channel ch
    // tp[(h*ws + w)*L + l] = image l's element (h, w) of this channel; without padding or
    // stride the plane is tp itself, so the transposes write it
    T* tp = nullptr;
    if (L > 1 && lanes == L) {
      const bool whole = lw.sh == 1 && lw.sw == 1 && lw.pad_h == 0 && lw.pad_w == 0 &&
                         lw.hq == lw.hs && lw.wq == lw.ws;
      tp = whole ? o : scratch_aligned<T>(5, pixels * L);
      index_t j = 0;
      for (; j + L <= pixels; j += L) lk.transpose(s0 + j, image, tp + j * L, L);
      for (; j < pixels; ++j)
        for (index_t l = 0; l < L; ++l) tp[j * L + l] = s0[l * image + j];
      if (whole) return;
    }
    for (index_t a = 0; a < lw.sh; ++a)
      for (index_t b = 0; b < lw.sw; ++b) {
        // valid w'': 0 <= w''*sw + b - pad_w < ws
        const index_t lo = std::clamp<index_t>(-floor_div(b - lw.pad_w, lw.sw), 0, lw.wq);
        const index_t hi =
            std::clamp<index_t>(floor_div(lw.ws - 1 + lw.pad_w - b, lw.sw) + 1, lo, lw.wq);
        for (index_t hh = 0; hh < lw.hq; ++hh) {
          const index_t h = hh * lw.sh + a - lw.pad_h;
          T* orow = o + ((a * lw.sw + b) * hw + hh * lw.wq) * L;
          if (h < 0 || h >= lw.hs) {
            std::fill(orow, orow + lw.wq * L, T(0));
            continue;
          }
          std::fill(orow, orow + lo * L, T(0));
          std::fill(orow + hi * L, orow + lw.wq * L, T(0));
          const index_t w0 = b - lw.pad_w;  // source column of w'' = 0
          if (L == 1) {
            const T* srow = s0 + h * lw.ws + w0;
            if (lw.sw == 1)
              std::memcpy(orow + lo, srow + lo, sizeof(T) * std::size_t(hi - lo));
            else
              strided_copy(srow + lo * lw.sw, lw.sw, orow + lo, hi - lo);
          } else if (tp) {
            const T* trow = tp + (h * lw.ws + w0) * L;
            if (lw.sw == 1)
              std::memcpy(orow + lo * L, trow + lo * L, sizeof(T) * std::size_t((hi - lo) * L));
            else
              for (index_t w = lo; w < hi; ++w)
                std::memcpy(orow + w * L, trow + w * lw.sw * L, sizeof(T) * std::size_t(L));
          } else {
            const T* srow = s0 + h * lw.ws + w0;
            std::fill(orow + lo * L, orow + hi * L, T(0));  // (the lanes past the images)
            for (index_t w = lo; w < hi; ++w)
              for (index_t l = 0; l < lanes; ++l) orow[w * L + l] = srow[l * image + w * lw.sw];
          }
        }
      }
  }
}
template <class T>
void build_slack(const Lowering& lw, T* out) {
  std::fill(out + lw.items() * lw.plane * lw.lanes, out + lw.size, T(0));
}

// Rows of the output split into panels of at most mr_max rows, as even as possible.
struct Panels {
  std::vector<index_t> first;  // first row of panel i; first[count] = rows
  index_t count() const { return index_t(first.size()) - 1; }
  int rows(index_t i) const { return int(first[std::size_t(i + 1)] - first[std::size_t(i)]); }
};
Panels make_panels(index_t rows, int mr_max) {
  const index_t count = ceil_div(rows, mr_max);
  Panels p;
  for (index_t i = 0; i <= count; ++i) p.first.push_back(i * rows / count);
  return p;
}

// Everything about one direction that the shape decides.
struct Plan {
  bool batch = false;  // the tier: batch, channels (products only) or pixels
  bool chan = false;
  index_t L = 1;       // lanes of the ISA for T
  Lowering in{};       // X~ of the input (x, or dy for backward-data)
  Lowering dyl{};      // backward-weights: the lowered dy
  index_t M = 0;       // output rows per group: K/G, or C/G for backward-data
  index_t taps = 0;    // reduction terms per output: ci*R*S
  index_t op = 0, oq = 0;  // output extent of the product
  std::vector<index_t> boff;  // per tap (padded to a whole tap tile), times in.lanes
  Panels panels;       // channels tier: panels of vectors of L output rows
  index_t bnp = 0;     // forward / backward-data: output vectors (channels tier: pixels) per
                       // block, a multiple of every panel's tile (lk.np[rows], lk.cnw[vectors]),
                       // so that all panels tile a block exactly
  index_t dlen = 0;    // backward-weights, pixels tier: elements per row of the lowered dy
  index_t dyt = 0;     // backward-weights, channels tier: elements of a chunk of dy transposed
                       // (chan_chunk_rows output rows x the widest panel's channels)
  index_t R = 0, dh = 0, row_taps = 0;  // products: taps of one kernel row r are one range
  // Backward-weights. Tiles: (group, panel of rows, tile of nt taps); tasks: (run of units,
  // group, panel, block of tile_blk tap tiles). Units (images, or groups of L images) are cut
  // into `runs` runs of consecutive units; each run's lane sums go to its own partial and the
  // partials are added in run order before the lane tree. All fixed by the shape. The channels
  // tier uses only ntiles (tiles of cnw taps) and tile_blk (= ntiles: the most tiles of one
  // panel a thread may run); its threads take even runs of tiles (channels_backward_weights).
  std::vector<index_t> ntiles, tile_blk, blocks;  // per panel
  index_t runs = 1;

  // The kernel rows r a tile of output rows [pa, pb] needs: the others only read padding (or,
  // for backward-data, the zeros around dy). Output row p reads padded input row
  // p*sh + r*dh, which holds data iff pad_h <= it < pad_h + hs. Returned as a range of taps.
  std::pair<index_t, index_t> tap_range(index_t pa, index_t pb) const {
    auto ceil_q = [](index_t a, index_t b) { return -floor_div(-a, b); };
    const index_t lo = std::max<index_t>(0, ceil_q(in.pad_h - pb * in.sh, dh));
    const index_t hi = std::clamp<index_t>(ceil_q(in.pad_h + in.hs - pa * in.sh, dh), lo, R);
    return {lo * row_taps, hi * row_taps};
  }
};

// The channels tier's backward-weights chunk: whole output rows, about chunk_steps pixels.
index_t chan_chunk_rows(const Plan& pl) { return std::max<index_t>(1, chunk_steps / pl.oq); }

// Cost (in vector multiply-adds) of each tier, and the work each wastes: the pixels tier
// computes the columns [Q, wq) of every row and rounds each image up to whole tiles, and copies
// its input and output row by row; the batch tier rounds the batch up to whole groups of lanes
// and transposes its inputs and outputs by L x L vector blocks. Per element moved, about a
// tenth of a multiply-add (batch: a load, a store and log2(L) shuffles per L elements, and a
// row copy; pixels: the row copies), measured on LeNet's and ResNet's shapes.
constexpr double transpose_cost = 0.1, copy_cost = 0.05;
// The channels tier's output: its tiles are [pixel][channel], transposed by L x L blocks and
// copied into NCHW row by row (until a later session, written one element at a time). Its
// cost per output element, in vector multiply-adds, was fitted while it was one element at a
// time, and grows with L (a vector multiply-add does L lanes' work): about one at L = 4 and 8
// (AVX2; the measurements at plan_of's rule), about two at L = 16 (AVX-512 float, an Intel
// Xeon: the ResNet stem's forward, which one per element put at 1.098 of the pixels tier's
// cost and so took, ran at 0.71-0.74x of the pixels tier in side-by-side runs; ResNet's and
// VGG's 3x3 layers, which stay in the tier with two, at 0.92-1.06x). Kept after the
// transposes: with them the stem's forward measured 1.00x of the pixels tier (paired runs,
// quartiles 0.87-1.25), and no AVX2 machine was at hand to fit it again.
double scatter_cost(index_t lanes) { return std::max(1.0, double(lanes) / 8.0); }

// Tap offsets in X~ for the forward / backward-weights lowering of x, in the order (r, c, s)
// (the products: a tile's taps that can read x rows are one range) or (c, r, s) (the layout of
// dw).
std::vector<index_t> tap_offsets_x(const Conv2dGeom& g, const Lowering& lw, bool rcs) {
  std::vector<index_t> off;
  const index_t hw = lw.hq * lw.wq;
  auto push = [&](index_t c, index_t r, index_t s) {
    const index_t vr = r * g.prm.dilation[0], vs = s * g.prm.dilation[1];
    const index_t phase = (vr % lw.sh) * lw.sw + vs % lw.sw;
    off.push_back((c * lw.plane + phase * hw + (vr / lw.sh) * lw.wq + vs / lw.sw) * lw.lanes);
  };
  if (rcs) {
    for (index_t r = 0; r < g.r; ++r)
      for (index_t c = 0; c < lw.ci; ++c)
        for (index_t s = 0; s < g.s; ++s) push(c, r, s);
  } else {
    for (index_t c = 0; c < lw.ci; ++c)
      for (index_t r = 0; r < g.r; ++r)
        for (index_t s = 0; s < g.s; ++s) push(c, r, s);
  }
  return off;
}

template <class T>
Plan plan_of(const Conv2dGeom& g, ConvDir dir) {
  const LoweredKernels<T>& lk = lowered_kernels<T>();
  Plan pl;
  pl.L = lk.lanes;
  const index_t L = pl.L, G = g.groups();
  const index_t sh = g.prm.stride[0], sw = g.prm.stride[1];
  const index_t dh = g.prm.dilation[0], dw = g.prm.dilation[1];
  // The lowered input in pixel coordinates (lanes filled in below, once the tier is known).
  index_t images = g.n, c_src, hs, ws, pad_h, pad_w, ph_h, ph_w, hq, wq;
  if (dir == ConvDir::backward_data) {
    assert(sh == 1 && sw == 1);
    c_src = g.k, hs = g.p, ws = g.q;
    pad_h = dh * (g.r - 1) - g.prm.pad[0], pad_w = dw * (g.s - 1) - g.prm.pad[1];
    ph_h = ph_w = 1;
    hq = g.h + dh * (g.r - 1), wq = g.w + dw * (g.s - 1);
    pl.M = g.c_per_group();
    pl.op = g.h, pl.oq = g.w;
  } else {
    c_src = g.c, hs = g.h, ws = g.w;
    pad_h = g.prm.pad[0], pad_w = g.prm.pad[1];
    ph_h = sh, ph_w = sw;
    hq = ceil_div(g.h + 2 * pad_h, sh), wq = ceil_div(g.w + 2 * pad_w, sw);
    pl.M = g.k_per_group();
    pl.op = g.p, pl.oq = g.q;
  }
  const index_t ci = c_src / G;
  pl.taps = ci * g.r * g.s;
  // backward-weights: panels of at most mr_max / 2 rows (of dy), so that a chunk of each of the
  // panel's dy rows and of the tile's x rows stays in the L1 cache across its tap tiles
  pl.panels = make_panels(pl.M, dir == ConvDir::backward_weights ? std::max(1, lk.mr_max / 2)
                                                                 : lk.mr_max);
  index_t np = 1;
  index_t taps_pad = pl.taps;  // the taps a tile of the last tap tile reads, any panel
  for (index_t i = 0; i < pl.panels.count(); ++i) {
    np = std::lcm(np, index_t(lk.np[pl.panels.rows(i)]));
    taps_pad = std::max(taps_pad, round_up(pl.taps, lk.nt[pl.panels.rows(i)]));
  }
  pl.bnp = np;
  const double M = double(pl.M), taps = double(pl.taps), NG = double(images * G);
  const double pix = double(pl.op * pl.oq);
  const double in_elems = NG * double(ci) * double(hq * wq * ph_h * ph_w);
  double cost_pixels, cost_batch;
  if (dir == ConvDir::backward_weights) {
    const double steps = double(ceil_div(pl.op * wq, L));
    cost_pixels = NG * steps * M * double(taps_pad) + copy_cost * (in_elems + NG * M * pix);
    cost_batch = double(ceil_div(images, L)) * double(G) * pix * M * double(taps_pad) +
                 transpose_cost * (in_elems + NG * M * pix);
  } else {
    cost_pixels = NG * double(round_up(ceil_div(pl.op * wq, L), np)) * M * taps +
                  copy_cost * (in_elems + NG * M * pix);
    cost_batch = double(ceil_div(images, L)) * double(G) * double(round_up(pl.op * pl.oq, np)) *
                     M * taps +
                 transpose_cost * (in_elems + NG * M * pix);
  }
  // The channels tier (forward and backward-data): panels of vectors of L rows, tiles of cnw
  // output pixels (X~'s columns [Q, wq) skipped). Its multiply-adds are the batch tier's with
  // the rows rounded up to vectors; what it saves is not counted above: a tile's inputs are a
  // few pixels of each row of taps (L1-resident) and each is read once per panel of up to
  // kb_max*L rows, where the pixels and batch tiers' tiles read L-pixel vectors of every tap
  // row once per panel of at most mr_max rows. Measured (AVX2, 1 thread, float, against the better of the other two,
  // forward and backward-data) it gains 1.21-1.24x on ResNet's 3x3 and stem layers of 64
  // channels and 0.94-1.08x on VGG's 128 (double: 1.02-1.21x), and it loses on LeNet's 6 and
  // 16 (0.22-0.87x: few rows, and its outputs were then scattered one element at a time). So:
  // at least 4 vectors of rows, and a cost (multiply-adds and the output, scatter_cost) no
  // more than 10 % above the cheaper of the other two tiers' (then, with the columns [Q, wq)
  // computed too, the ResNet stem's wasted columns and scatter put it 5 % above the pixels
  // tier's, VGG's 8 % above the batch tier's; without them, the stem's float forward is 18 %
  // above and stays in the pixels tier, its double forward 2 % above).
  const Panels chan_panels = make_panels(ceil_div(pl.M, L), lk.kb_max);
  index_t chan_nw = 1;
  for (index_t i = 0; i < chan_panels.count(); ++i)
    chan_nw = std::lcm(chan_nw, index_t(lk.cnw[chan_panels.rows(i)]));
  const double cost_chan = NG * double(round_up(pl.op * pl.oq, chan_nw)) *
                               double(ceil_div(pl.M, L)) * taps +
                           copy_cost * in_elems + scatter_cost(L) * NG * M * pix;
  const bool chan_pays = dir != ConvDir::backward_weights && pl.M >= 4 * L &&
                         cost_chan <= 1.10 * std::min(cost_pixels, cost_batch);
  const int force = forced_tier().load(std::memory_order_relaxed);
  pl.batch = force == 0 ? L > 1 && cost_batch < cost_pixels : force == 2;
  // Backward-weights' channels tier (its kernel ran at about 96 % of the FMA peak on ResNet's
  // 3x3 layer, AVX-512 float, where the pixels tier's lane-wise dots ran at 72 %): at least 4
  // vectors of rows, and its multiply-adds no more than 5 % above the batch tier's where that
  // tier would be chosen. Paired runs on an AMD Zen 5, 1 thread, double, against the batch
  // tier: VGG's 3x3 0.95x while this tier summed X~'s columns [Q, wq) too (rows 30 wide for
  // 28: 7 % more multiply-adds), 1.04x without them (the same count); ResNet's 1.10-1.30x.
  const double cost_chan_bw = NG * pix * double(ceil_div(pl.M, L)) * taps;
  const bool chan_bw = pl.M >= 4 * L && (!pl.batch || cost_chan_bw <= 1.05 * cost_batch);
  pl.chan = dir == ConvDir::backward_weights ? force == 3 || (force == 0 && chan_bw)
                                             : force == 3 || (force == 0 && chan_pays);
  if (pl.chan) {
    pl.batch = false;
    pl.panels = chan_panels;
    pl.bnp = chan_nw;
  }
  const index_t lanes = pl.batch ? L : 1;
  index_t plane = ph_h * ph_w * hq * wq;
  pl.in = make_lowering(images, c_src, hs, ws, G, pad_h, pad_w, ph_h, ph_w, hq, wq, plane, lanes);
  // products: taps (r, c, s) (backward-data: (r', k, s')); backward-weights: (c, r, s)
  if (dir == ConvDir::backward_data) {
    for (index_t r = 0; r < g.r; ++r)
      for (index_t k = 0; k < ci; ++k)
        for (index_t s = 0; s < g.s; ++s)
          pl.boff.push_back((k * pl.in.plane + r * dh * wq + s * dw) * lanes);
  } else {
    pl.boff = tap_offsets_x(g, pl.in, dir == ConvDir::forward);
  }
  pl.R = g.r, pl.dh = dh, pl.row_taps = ci * g.s;
  const index_t max_boff = *std::max_element(pl.boff.begin(), pl.boff.end());
  if (dir == ConvDir::backward_weights && pl.chan) {
    // Tiles of cnw[kb] taps x a panel's kb vectors of dy's channels, each summed over the
    // pixels of every image in order (the op x oq output pixels only: X~'s columns [oq, wq)
    // are skipped). Tap tiles read past the last tap: repeat it (its results are dropped). dy
    // transposed: per (image, group) and panel, the op*oq pixels x the panel's kb*L channels
    // (zeros for rows >= M). The (group, panel, tap tile) tiles are dealt out to the threads
    // as even runs (see channels_backward_weights).
    index_t pad_to = pl.taps;
    for (index_t i = 0; i < pl.panels.count(); ++i)
      pad_to = std::max(pad_to, round_up(pl.taps, lk.cnw[pl.panels.rows(i)]));
    pl.boff.resize(std::size_t(pad_to), pl.boff.back());
    pl.dyt = chan_chunk_rows(pl) * pl.oq * lk.kb_max * L;
    // (the last unit's taps read at most its last output pixel's inputs)
    pl.in.size = std::max(pl.in.size, (pl.in.units * G - 1) * pl.in.unit_stride() + max_boff +
                                          pl.op * wq);
    const index_t npan = pl.panels.count();
    for (index_t pi = 0; pi < npan; ++pi) {
      const index_t tiles = ceil_div(pl.taps, lk.cnw[pl.panels.rows(pi)]);
      pl.ntiles.push_back(tiles);
      pl.tile_blk.push_back(tiles);
    }
  } else if (dir == ConvDir::backward_weights) {
    // Tap tiles read past the last tap: repeat it (its results are dropped).
    pl.boff.resize(std::size_t(taps_pad), pl.boff.back());
    if (pl.batch) {
      pl.dyl = make_lowering(images, g.k, g.p, g.q, G, 0, 0, 1, 1, g.p, g.q, g.p * g.q, L);
    } else {
      // dy with rows widened to wq (zeros at q >= Q), each channel rounded up to whole vectors
      pl.dlen = round_up(g.p * wq, L);
      pl.dyl = make_lowering(images, g.k, g.p, g.q, G, 0, 0, 1, 1, g.p, wq, pl.dlen, 1);
      // The last unit's taps read up to dlen past their offsets.
      pl.in.size = std::max(pl.in.size, (pl.in.units * G - 1) * pl.in.unit_stride() + max_boff +
                                            pl.dlen);
    }
    // A task runs all its tap tiles over each chunk of its panel's dy rows while the chunk is
    // in the L1 cache, so it takes as many tiles as it can. The call wants about 8 tasks; it
    // gets them from runs of units where every panel's accumulators fit in acc_bytes (a
    // task then reads its share of x and dy once), else by splitting the panels' tiles into
    // blocks (each block reads the panel's dy again; the split changes no bit). LeNet conv1
    // at 2 threads: 1.41x one thread with 4 blocks of 1 tile, 1.76x with 4 runs instead.
    constexpr index_t acc_bytes = 16384;
    const index_t units_afford = std::clamp<index_t>(
        index_t(g.flops() / (4 * task_flops * double(G * pl.panels.count()))), 1, pl.in.units);
    bool by_runs = units_afford > 1 && G * pl.panels.count() < 8;
    for (index_t pi = 0; pi < pl.panels.count(); ++pi) {
      const int mr = pl.panels.rows(pi), nt = lk.nt[mr];
      const auto bytes = index_t(sizeof(T)) * ceil_div(pl.taps, nt) * mr * nt * L;
      by_runs = by_runs && bytes <= acc_bytes;
    }
    index_t base_tasks = 0;
    const index_t split = by_runs ? 1 : ceil_div(8, G * pl.panels.count());
    for (index_t pi = 0; pi < pl.panels.count(); ++pi) {
      const int mr = pl.panels.rows(pi), nt = lk.nt[mr];
      const index_t tiles = ceil_div(pl.taps, nt);
      const index_t blk = ceil_div(tiles, std::min(tiles, split));
      pl.ntiles.push_back(tiles);
      pl.tile_blk.push_back(blk);
      pl.blocks.push_back(ceil_div(tiles, blk));
      base_tasks += G * pl.blocks.back();
    }
    const index_t want = ceil_div(8, base_tasks);
    const auto afford = index_t(g.flops() / (4 * task_flops * double(base_tasks)));
    pl.runs = std::clamp<index_t>(std::min(want, afford), 1, pl.in.units);
  } else if (pl.chan) {
    // Tiles of the last unit read at most the last output pixel's inputs.
    pl.in.size = std::max(pl.in.size, (pl.in.units * G - 1) * pl.in.unit_stride() + max_boff +
                                          pl.op * wq);
  } else if (!pl.batch) {
    // Tiles of the last unit read up to a whole tile past the last output pixel.
    pl.in.size = std::max(pl.in.size, (pl.in.units * G - 1) * pl.in.unit_stride() + max_boff +
                                          round_up(ceil_div(pl.op * wq, L), np) * L);
  }
  return pl;
}

const char* tier_name(const Plan& pl) {
  return pl.batch ? "batch" : pl.chan ? "channels" : "pixels";
}

// Rows of the packed weights of the products (channels tier: rows rounded up to vectors).
index_t packed_rows(const Plan& pl) { return pl.chan ? round_up(pl.M, pl.L) : pl.M; }

// Packs the weights of each group as panels: panel i of group gi holds
// a[kk*mr + m] = w[row(gi, panel.first + m) + col[kk]] for kk < taps (channels tier: mr = L
// times the panel's vectors, rows from L*panel.first, zeros for rows >= M); returns each
// panel's offset. A weight's index splits into a row's part and a tap's (col, taps entries),
// so the loop does no division. out holds packed_rows(pl) * G * taps elements.
template <class T, class F>
std::vector<index_t> pack_panels(const Plan& pl, index_t G, T* out, const T* w, F row,
                                 const std::vector<index_t>& col) {
  std::vector<index_t> off;
  index_t at = 0;
  const index_t unit = pl.chan ? pl.L : 1;
  std::vector<index_t> base;
  for (index_t gi = 0; gi < G; ++gi)
    for (index_t i = 0; i < pl.panels.count(); ++i) {
      const index_t mr = pl.panels.rows(i) * unit;
      const index_t m0 = pl.panels.first[std::size_t(i)] * unit;
      const index_t mc = std::clamp<index_t>(pl.M - m0, 0, mr);  // rows < M
      base.resize(std::size_t(mc));
      for (index_t m = 0; m < mc; ++m) base[std::size_t(m)] = row(gi, m0 + m);
      off.push_back(at);
      for (index_t kk = 0; kk < pl.taps; ++kk) {
        T* a = out + at + kk * mr;
        const T* wk = w + col[std::size_t(kk)];
        for (index_t m = 0; m < mc; ++m) a[m] = wk[base[std::size_t(m)]];
        for (index_t m = mc; m < mr; ++m) a[m] = T(0);
      }
      at += pl.taps * mr;
    }
  return off;
}

// The crop of one output row's run: src[j - j0] for j = p*wq + q in [j0, j1) ->
// dst[p*oq + q] where q < oq (the columns [oq, wq) are dropped). By memcpy, whose run-time
// choice stores whole vectors of the CPU's width: this file is built for baseline x86-64, and
// its own loop stored 16 bytes at a time, a third of the crop's time on the stem's forward
// (most of it waiting on those stores); with memcpy the stem's forward is 1.09-1.10x (float and
// double, AVX-512 Zen 5), ResNet 3x3's 1.03x.
template <class T>
void crop_row(const T* src, index_t j0, index_t j1, index_t wq, index_t oq, T* dst) {
  for (index_t p = j0 / wq; p * wq < j1; ++p) {
    const index_t qa = std::max(j0 - p * wq, index_t(0));
    const index_t qb = std::min(j1 - p * wq, oq);
    if (qb > qa)
      std::memcpy(dst + p * oq + qa, src + p * wq + qa - j0, std::size_t(qb - qa) * sizeof(T));
  }
}

// The product of forward and backward-data: out[n][gi*M + m][p][q] (an NCHW tensor of G*M
// channels, op x oq pixels) = bias[gi*M + m] (or 0) + sum_kk A(gi, m, kk) * X~[boff[kk] + ...],
// each tile summing only the taps whose kernel rows can reach data (Plan::tap_range; the
// others would add products with zeros).
//   pixels tier: tasks (image and group, run of blocks); a block is bnp vectors of L
//     consecutive j = p*wq + q, which every panel covers with whole tiles of its width (the
//     panels share the block's inputs); each tile is cropped into out (q < oq) at once.
//   batch tier: tasks (group of L images and group, run of output pixels); for each panel the
//     tiles of np pixels fill a stage [m][pixel][lane] that is transposed into out by L x L
//     blocks.
//   channels tier: tasks (image and group, run of at least chan_run pixels); for each panel
//     the tiles fill a stage [pixel][row] that L x L transposes turn into rows, cropped into
//     out.
struct ProductTasks {
  index_t run_vecs, vecs, runs, count;
};
template <class T>
ProductTasks product_tasks(const Plan& pl) {
  const index_t M = pl.M, L = pl.L, bnp = pl.bnp;
  const double block_flops =
      2.0 * double(M) * double(pl.taps) * double(pl.chan ? bnp : bnp * L);
  const index_t blocks_per_task = std::max<index_t>(1, index_t(task_flops / block_flops));
  ProductTasks pt;
  // batch tier: at least 2L output pixels per task, and whole L x L blocks of them, so that
  // its output goes out by L x L transposes (only a plane's last task has a scalar tail;
  // with runs of whole tiles only, LeNet conv2's 39-pixel runs left 7 of every 39 pixels to
  // the scalar copy, 4 % of its forward on AVX-512)
  const index_t min_run = pl.batch ? 2 * L : chan_run;  // (batch and channels tiers)
  pt.run_vecs = pl.batch || pl.chan
                    ? round_up(std::max(blocks_per_task * bnp, min_run), std::lcm(bnp, L))
                    : blocks_per_task * bnp;
  pt.vecs = pl.batch || pl.chan ? pl.op * pl.oq : ceil_div(pl.op * pl.in.wq, L);
  pt.runs = ceil_div(pt.vecs, pt.run_vecs);
  pt.count = pl.in.units * pl.in.groups * pt.runs;
  return pt;
}

// The channels tier's stage, in elements: a run's tiles [pixel][row] and the same transposed
// [row][pixel], each run_vecs pixels x kb_max vectors of rows.
template <class T>
index_t channel_stage(const LoweredKernels<T>& lk, const ProductTasks& pt) {
  return 2 * pt.run_vecs * lk.kb_max * lk.lanes;
}

// Task t < product_tasks(pl).count.
template <class T>
void product_task(const Plan& pl, const ProductTasks& pt, const T* xt, const T* apack,
                  const std::vector<index_t>& aoff, const T* bias, Activation act, T* out,
                  index_t t) {
  const LoweredKernels<T>& lk = lowered_kernels<T>();
  const Lowering& in = pl.in;
  const index_t G = in.groups, M = pl.M, L = pl.L, bnp = pl.bnp;
  const index_t PQ = pl.op * pl.oq, npan = pl.panels.count();
  const int mode = bias ? 1 : 0;
  const index_t run_vecs = pt.run_vecs, vecs = pt.vecs, runs = pt.runs;
  {
    const index_t unit = t / runs, run = t % runs;  // unit = n*G + gi, or grp*G + gi
    const index_t un = unit / G, gi = unit % G;
    const T* xu = xt + unit * in.unit_stride();
    const index_t v_begin = run * run_vecs, v_end = std::min(vecs, v_begin + run_vecs);
    index_t pofs[24];
    if (pl.chan) {
      // vecs: the output pixels v = p*oq + q; a tile is cnw[kb] of them (their inputs at
      // p*wq + q in X~, pofs; past the last pixel, the last again) x kb vectors of rows. A
      // panel's tiles fill the run's stage [pixel][row], which L x L transposes turn into
      // [row][pixel] (npx pixels a row), each row < M one run of out.
      const index_t npx = round_up(v_end - v_begin, L);
      T* stage = scratch_aligned<T>(4, channel_stage(lk, pt));
      T* rows = stage + pt.run_vecs * lk.kb_max * L;
      for (index_t pi = 0; pi < npan; ++pi) {
        const int kb = pl.panels.rows(pi), nw = lk.cnw[kb];
        const index_t kbl = kb * L, m0 = pl.panels.first[std::size_t(pi)] * L;
        const index_t mc = std::min(kbl, M - m0);
        const T* a = apack + aoff[std::size_t(gi * npan + pi)];
        const T* bm = bias ? bias + (gi * npan + pi) * lk.kb_max * L : nullptr;
        for (index_t v0 = v_begin; v0 < v_end; v0 += nw) {
          const index_t v1 = std::min(PQ, v0 + nw);
          for (index_t i = 0; i < nw; ++i) {
            const index_t v = std::min(v0 + i, v1 - 1);
            pofs[i] = (v / pl.oq) * in.wq + v % pl.oq;
          }
          const auto [k0, k1] = pl.tap_range(v0 / pl.oq, (v1 - 1) / pl.oq);
          lk.couter[kb](k1 - k0, a + k0 * kbl, xu, pl.boff.data() + k0, pofs,
                        stage + (v0 - v_begin) * kbl, mode, bm);
        }
        // the stage's pixels computed (whole tiles), at most npx of them transposed; those past
        // the run's end are never copied
        const index_t done = std::min(round_up(v_end - v_begin, index_t(nw)), npx);
        activate(act, stage, done * kbl);  // (rows >= M: dropped)
        for (index_t p0 = 0; p0 < done; p0 += L)
          for (index_t r0 = 0; r0 < kbl; r0 += L)
            lk.transpose(stage + p0 * kbl + r0, kbl, rows + r0 * npx + p0, npx);
        for (index_t m = 0; m < mc; ++m)
          std::memcpy(out + (un * G * M + gi * M + m0 + m) * PQ + v_begin, rows + m * npx,
                      sizeof(T) * std::size_t(v_end - v_begin));
      }
    } else if (!pl.batch) {
      T* stage = scratch_aligned<T>(4, lk.mr_max * 24 * L);
      const index_t span = pl.op * in.wq;
      for (index_t b0 = v_begin; b0 < v_end; b0 += bnp)
        for (index_t pi = 0; pi < npan; ++pi) {
          const int mr = pl.panels.rows(pi), np = lk.np[mr];
          const index_t m0 = pl.panels.first[std::size_t(pi)];
          const T* a = apack + aoff[std::size_t(gi * npan + pi)];
          const T* bm = bias ? bias + gi * M + m0 : nullptr;
          for (index_t i = 0; i < np; ++i) pofs[i] = i * L;
          for (index_t v0 = b0; v0 < std::min(v_end, b0 + bnp); v0 += np) {
            const index_t j0 = v0 * L, j1 = std::min(span, j0 + np * L);
            const auto [k0, k1] = pl.tap_range(j0 / in.wq, (j1 - 1) / in.wq);
            lk.outer[mr](k1 - k0, a + k0 * mr, xu + j0, pl.boff.data() + k0, pofs, stage, np * L,
                         mode, bm);
            activate(act, stage, mr * np * L);  // (the columns q >= oq too: dropped below)
            for (int m = 0; m < mr; ++m)
              crop_row(stage + m * np * L, j0, j1, in.wq, pl.oq,
                       out + (un * G * M + gi * M + m0 + m) * PQ);
          }
        }
    } else {
      const index_t count = v_end - v_begin;  // output pixels of this task
      const index_t lanes = std::min(L, in.images - un * L);
      T* stage = scratch_aligned<T>(4, lk.mr_max * (round_up(count, 24) + L) * L);
      const index_t ld = round_up(count, 24) * L;  // stage row m: pixels x lanes
      for (index_t pi = 0; pi < npan; ++pi) {
        const int mr = pl.panels.rows(pi), np = lk.np[mr];
        const index_t m0 = pl.panels.first[std::size_t(pi)];
        const T* a = apack + aoff[std::size_t(gi * npan + pi)];
        const T* bm = bias ? bias + gi * M + m0 : nullptr;
        for (index_t v0 = v_begin; v0 < v_end; v0 += np) {
          const index_t nv = std::min<index_t>(np, v_end - v0);
          for (index_t i = 0; i < np; ++i) {  // a short last tile repeats its last pixel
            const index_t pix = v0 + std::min<index_t>(i, nv - 1);
            pofs[i] = ((pix / pl.oq) * in.wq + pix % pl.oq) * L;
          }
          const auto [k0, k1] = pl.tap_range(v0 / pl.oq, (v0 + nv - 1) / pl.oq);
          lk.outer[mr](k1 - k0, a + k0 * mr, xu, pl.boff.data() + k0, pofs,
                       stage + (v0 - v_begin) * L, ld, mode, bm);
        }
        // stage[m][pixel][lane] -> out[un*L + lane][gi*M + m0 + m][v_begin + pixel]
        for (int m = 0; m < mr; ++m) {
          T* o = out + (un * L * G * M + gi * M + m0 + m) * PQ + v_begin;
          T* sm = stage + m * ld;
          activate(act, sm, count * L);
          index_t i = 0;
          if (lanes == L)
            for (; i + L <= count; i += L) lk.transpose(sm + i * L, L, o + i, G * M * PQ);
          for (; i < count; ++i)
            for (index_t l = 0; l < lanes; ++l) o[l * G * M * PQ + i] = sm[i * L + l];
        }
      }
    }
  }
}

// Forward and backward-data in one parallel region: X~ from src (a barrier), then the tasks.
template <class T>
void run_product(const Conv2dGeom& g, const Plan& pl, const T* src, T* xt, const T* apack,
                 const std::vector<index_t>& aoff, const T* bias, Activation act, T* out) {
  const ProductTasks pt = product_tasks<T>(pl);
  const index_t items = pl.in.items();
  build_slack(pl.in, xt);
  // the channels tier reads the bias by whole vectors per panel: bpad[gi][panel][kb_max*L]
  std::vector<T> bpad;
  if (pl.chan && bias) {
    const LoweredKernels<T>& lk = lowered_kernels<T>();
    const index_t G = pl.in.groups, npan = pl.panels.count(), w = lk.kb_max * pl.L;
    bpad.assign(std::size_t(G * npan * w), T(0));
    for (index_t gi = 0; gi < G; ++gi)
      for (index_t pi = 0; pi < npan; ++pi) {
        const index_t m0 = pl.panels.first[std::size_t(pi)] * pl.L;
        const index_t m1 = std::min(pl.M, pl.panels.first[std::size_t(pi + 1)] * pl.L);
        std::copy(bias + gi * pl.M + m0, bias + gi * pl.M + m1,
                  bpad.begin() + (gi * npan + pi) * w);
      }
    bias = bpad.data();
  }
#pragma omp parallel if (g.flops() >= min_parallel_flops)
  {
#pragma omp for schedule(static)
    for (index_t it = 0; it < items; ++it) build_item(pl.in, src, xt, it);
    // Static: each thread a contiguous run of tasks. Neighbouring tasks write neighbouring
    // pixels of the same output rows, and a task's first and last cache lines of each row are
    // shared with the next task; dealt out one by one (dynamic) the neighbours sat on
    // different threads and those lines bounced between the cores: LeNet conv1 forward at
    // 2 threads was 1.21x one thread, 2.01x now (backward-data 1.34 -> 1.81).
#pragma omp for schedule(static)
    for (index_t t = 0; t < pt.count; ++t) product_task(pl, pt, xt, apack, aoff, bias, act, out, t);
  }
}

// The fixed tree that combines the lanes of a backward-weights sum: at width w = L/2, ..., 1,
// lane l += lane l + w. For the widths in use the width is a constant and the tree unrolls
// (the same additions in the same order): the loop over a run-time width was 10 % of VGG's
// backward-weights call (128 x 1152 entries, cpu-clock), 4 % unrolled; unrolled in place it
// stalled on stores forwarded to narrower loads, so each level fills a fresh array.
template <class T, int N>
T lane_tree_n(const T* v) {
  if constexpr (N == 1) {
    return v[0];
  } else {
    T h[N / 2];  // the next level in a fresh array: each level's loads match its stores
#pragma GCC unroll 16
    for (int l = 0; l < N / 2; ++l) h[l] = v[l] + v[l + N / 2];
    return lane_tree_n<T, N / 2>(h);
  }
}
template <class T>
T lane_tree(const T* v, index_t L) {
  switch (L) {  // the kernels' vector widths: SSE double 2 ... AVX-512 float 16
    case 1: return v[0];
    case 2: return lane_tree_n<T, 2>(v);
    case 4: return lane_tree_n<T, 4>(v);
    case 8: return lane_tree_n<T, 8>(v);
    default: assert(L == 16); return lane_tree_n<T, 16>(v);
  }
}

// The channels tier's dy transposed, for output rows [p0, p0 + rows) of image n, group gi and
// panel pi (kb vectors from vector v0): d[(i*Q + q)*kb*L + v*L + l] = dy[n][gi*M + (v0 + v)*L
// + l][p0 + i][q] (zeros for rows >= M), by L x L transposes where L rows are there.
template <class T>
void transpose_dy(const Plan& pl, const T* dy, index_t n, index_t gi, index_t pi, index_t p0,
                  index_t rows, T* d) {
  const LoweredKernels<T>& lk = lowered_kernels<T>();
  const index_t G = pl.in.groups, M = pl.M, L = pl.L;
  const index_t Q = pl.oq, PQ = pl.op * Q;
  const T* src = dy + (n * G + gi) * M * PQ + p0 * Q;  // channel gi*M of image n, row p0
  const index_t kbl = pl.panels.rows(pi) * L, v0 = pl.panels.first[std::size_t(pi)];
  for (index_t i = 0; i < rows; ++i)
    for (index_t v = 0; v < kbl / L; ++v) {
      const index_t m0 = (v0 + v) * L;
      T* drow = d + i * Q * kbl + v * L;  // (q, lane l) at drow[q*kbl + l]
      const T* srow = src + m0 * PQ + i * Q;
      index_t q = 0;
      if (m0 + L <= M && Q >= L) {
        for (; q + L <= Q; q += L) lk.transpose(srow + q, PQ, drow + q * kbl, kbl);
        // the last columns by a block ending at Q (it rewrites some with the same values): one
        // element at a time, ResNet's 8 of 56 were 4 % of its backward-weights
        if (q < Q) lk.transpose(srow + Q - L, PQ, drow + (Q - L) * kbl, kbl), q = Q;
      }
      for (; q < Q; ++q)
        for (index_t l = 0; l < L; ++l) drow[q * kbl + l] = m0 + l < M ? srow[l * PQ + q] : T(0);
    }
}

// Backward-weights in the channels tier (Plan): X~ (a barrier), then the tiles (group, panel,
// tap tile) in that order, dealt out as one run to each thread, as even as whole tiles allow.
// A thread runs its tiles of one (group, panel) together: over each image in order, and each
// image's output rows in chunks of about chunk_steps pixels (whole rows); each chunk of dy is
// transposed pixel-major into the thread's buffer (28-32 KB at 4 vectors of channels) and every
// tile is run over it in turn, from the L1 cache. A tile's sums do not depend on which thread
// runs it or with which others, so the runs change no bit; and with one run per thread each
// thread reads dy once per panel it touches (in 16 tasks of 6 tap tiles each, ResNet 3x3 at 2
// threads read its 6.6 MB of dy 8 times a thread: 1.00x the pixels tier, against 1.08x at 1
// thread). Where two threads share a panel, both transpose its chunks. Transposed chunk by
// chunk (where all of dy was transposed into a shared buffer before the tiles, written out to
// memory and read back: 16 % of the stem's call in a cpu-clock profile), paired runs on an AMD
// Zen 5 (AVX-512), float: the stem 1.13x at 1 and 2 threads, ResNet 3x3 1.03-1.04x, VGG 1.00x;
// double: the stem 1.11x, ResNet 1.03x.
template <class T>
void channels_backward_weights(const Conv2dGeom& g, const Plan& pl, const T* x, const T* dy,
                               T* dw) {
  const LoweredKernels<T>& lk = lowered_kernels<T>();
  const Lowering& in = pl.in;
  const index_t G = g.groups(), M = pl.M, L = pl.L, taps = pl.taps, npan = pl.panels.count();
  const index_t P = pl.op, Q = pl.oq;
  const index_t rc = chan_chunk_rows(pl);
  T* xt = scratch_aligned<T>(1, in.size);
  build_slack(in, xt);
  std::vector<index_t> first{0};  // the first tile of (group, panel) u = gi*npan + pi
  for (index_t gi = 0; gi < G; ++gi)
    for (index_t pi = 0; pi < npan; ++pi) first.push_back(first.back() + pl.ntiles[std::size_t(pi)]);
  const index_t all = first.back();
  const index_t items_x = in.items();
  // tiles [t0, t1) of (group, panel) u, as tiles t0 - first[u] ... of that panel
  auto run_tiles = [&](index_t u, index_t t0, index_t t1) {
    const index_t gi = u / npan, pi = u % npan;
    const int kb = pl.panels.rows(pi), nt = lk.cnw[kb];
    const index_t kbl = kb * L, v0 = pl.panels.first[std::size_t(pi)];
    const index_t tile_elems = nt * kbl, tile0 = t0 - first[std::size_t(u)];
    const index_t count = t1 - t0;
    T* acc = scratch_aligned<T>(4, count * tile_elems);
    T* dc = scratch_aligned<T>(2, rc * Q * kbl);  // a chunk of dy, transposed
    std::fill(acc, acc + count * tile_elems, T(0));
    for (index_t n = 0; n < g.n; ++n) {
      const T* xu = xt + (n * G + gi) * in.unit_stride();
      for (index_t p0 = 0; p0 < P; p0 += rc) {
        const index_t rows = std::min(rc, P - p0);
        transpose_dy(pl, dy, n, gi, pi, p0, rows, dc);
        for (index_t i = 0; i < count; ++i)
          lk.cdot[kb](rows, Q, dc, xu + p0 * in.wq, in.wq, pl.boff.data() + (tile0 + i) * nt,
                      acc + i * tile_elems);
      }
    }
    // acc[(tp*kb + v)*L + l] of tile tile0 + i: dw entry (gi*M + (v0 + v)*L + l, tap)
    for (index_t i = 0; i < count; ++i)
      for (index_t tp = 0; tp < nt && (tile0 + i) * nt + tp < taps; ++tp)
        for (index_t r = 0; r < kbl && v0 * L + r < M; ++r)
          dw[(gi * M + v0 * L + r) * taps + (tile0 + i) * nt + tp] =
              acc[i * tile_elems + tp * kbl + r];
  };
#pragma omp parallel if (g.flops() >= min_parallel_flops)
  {
#pragma omp for schedule(static)
    for (index_t it = 0; it < items_x; ++it) build_item(in, x, xt, it);
    const index_t threads = omp_get_num_threads(), me = omp_get_thread_num();
    const index_t a = me * all / threads, b = (me + 1) * all / threads;
    for (index_t u = 0; u < G * npan; ++u) {
      const index_t t0 = std::max(a, first[std::size_t(u)]);
      const index_t t1 = std::min(b, first[std::size_t(u + 1)]);
      if (t0 < t1) run_tiles(u, t0, t1);
    }
  }
}

}  // namespace

std::atomic<int>& forced_tier() {
  static std::atomic<int> tier{0};
  return tier;
}

// "a+b+c", with a run of k equal items written k*item.
std::string join_runs(const std::vector<std::string>& items) {
  std::string s;
  for (std::size_t i = 0; i < items.size();) {
    std::size_t j = i;
    while (j < items.size() && items[j] == items[i]) ++j;
    if (!s.empty()) s += '+';
    if (j - i > 1) s += std::to_string(j - i) + '*';
    s += items[i];
    i = j;
  }
  return s;
}

template <class T>
std::string lowered_plan(const Conv2dGeom& g, ConvDir dir) {
  const LoweredKernels<T>& lk = lowered_kernels<T>();
  const Plan pl = plan_of<T>(g, dir);
  std::vector<std::string> rows, tiles;
  for (index_t i = 0; i < pl.panels.count(); ++i) {
    const int mr = pl.panels.rows(i);
    rows.push_back(std::to_string(mr));
    tiles.push_back(dir == ConvDir::backward_weights
                        ? std::to_string(pl.ntiles[std::size_t(i)]) + "x" +
                              std::to_string(pl.chan ? lk.cnw[mr] : lk.nt[mr])
                        : std::to_string(pl.chan ? lk.cnw[mr] : lk.np[mr]));
  }
  // channels: panels of vectors of L rows, tiles of pixels
  std::string s = tier_name(pl);
  s += " panels=" + join_runs(rows);
  if (dir == ConvDir::backward_weights)
    s += " tap_tiles=" + join_runs(tiles) + " runs=" + std::to_string(pl.runs);
  else
    s += " tile=" + join_runs(tiles);
  return s;
}

template <class T>
LoweredWorkspace lowered_workspace(const Conv2dGeom& g, ConvDir dir) {
  const LoweredKernels<T>& lk = lowered_kernels<T>();
  const Plan pl = plan_of<T>(g, dir);
  const index_t L = pl.L, pad = 64 / index_t(sizeof(T));  // scratch_aligned's start slack
  LoweredWorkspace ws;
  // the lowered input, and backward-weights' lowered dy and run partials
  ws.shared = pl.in.size + pad;
  if (dir == ConvDir::backward_weights && pl.chan) {
    ws.per_thread += pl.dyt + pad;  // the thread's chunk of dy, transposed
  } else if (dir == ConvDir::backward_weights) {
    ws.shared += pl.dyl.size + pad;
    if (pl.runs > 1) ws.shared += pl.runs * g.groups() * pl.M * pl.taps * L + pad;
  } else {
    ws.shared += g.groups() * packed_rows(pl) * pl.taps;  // the packed weights
    if (pl.chan) ws.shared += g.groups() * pl.panels.count() * lk.kb_max * L;  // padded bias
  }
  // per thread: the batch tier's pixel-major transposition buffer, and the output stage
  // (forward, backward-data) or the tap tiles' accumulators (backward-weights)
  if (L > 1) ws.per_thread += pl.in.hs * pl.in.ws * L + pad;
  if (dir == ConvDir::backward_weights) {
    index_t acc = 0;
    for (index_t i = 0; i < pl.panels.count(); ++i) {
      const int mr = pl.panels.rows(i);
      acc = std::max(acc, pl.tile_blk[std::size_t(i)] * index_t(mr) *
                              (pl.chan ? lk.cnw[mr] : lk.nt[mr]) * L);
    }
    ws.per_thread += acc + pad;
  } else {
    const ProductTasks pt = product_tasks<T>(pl);
    ws.per_thread += (pl.batch  ? lk.mr_max * (round_up(pt.run_vecs, 24) + L) * L
                      : pl.chan ? channel_stage(lk, pt)
                                : lk.mr_max * 24 * L) +
                     pad;
  }
  return ws;
}

template <class T>
const char* lowered_tier(const Conv2dGeom& g, ConvDir dir) {
  if (dir == ConvDir::backward_data && (g.prm.stride[0] > 1 || g.prm.stride[1] > 1))
    return nullptr;
  return tier_name(plan_of<T>(g, dir));
}

template <class T>
void lowered_forward(const Conv2dGeom& g, const T* x, const T* w, const T* b, T* y,
                     Activation act) {
  const Plan pl = plan_of<T>(g, ConvDir::forward);
  T* xt = scratch_aligned<T>(1, pl.in.size);
  const index_t Kg = g.k_per_group();
  T* apack = scratch<T>(0, g.groups() * packed_rows(pl) * pl.taps);
  const index_t Cg = g.c_per_group(), S = g.s, RS = g.r * g.s;
  // A(gi, k, (r, c, s)) = w[gi*Kg + k][c][r][s]
  std::vector<index_t> col;
  for (index_t r = 0; r < g.r; ++r)
    for (index_t c = 0; c < Cg; ++c)
      for (index_t s = 0; s < S; ++s) col.push_back(c * RS + r * S + s);
  const auto aoff = pack_panels(
      pl, g.groups(), apack, w, [&](index_t gi, index_t k) { return (gi * Kg + k) * pl.taps; },
      col);
  run_product(g, pl, x, xt, apack, aoff, b, act, y);
}

template <class T>
void lowered_backward_data(const Conv2dGeom& g, const T* dy, const T* w, T* dx) {
  const Plan pl = plan_of<T>(g, ConvDir::backward_data);
  T* dyt = scratch_aligned<T>(1, pl.in.size);
  const index_t Kg = g.k_per_group(), Cg = g.c_per_group(), RS = g.r * g.s;
  T* apack = scratch<T>(0, g.groups() * packed_rows(pl) * pl.taps);
  // A(gi, c, (r', k, s')) = w[gi*Kg + k][c][R-1-r'][S-1-s']
  const index_t S = g.s;
  std::vector<index_t> col;
  for (index_t r = 0; r < g.r; ++r)
    for (index_t k = 0; k < Kg; ++k)
      for (index_t s = 0; s < S; ++s) col.push_back(k * Cg * RS + (g.r - 1 - r) * S + (S - 1 - s));
  const auto aoff = pack_panels(
      pl, g.groups(), apack, w, [&](index_t gi, index_t c) { return (gi * Kg * Cg + c) * RS; },
      col);
  run_product(g, pl, dy, dyt, apack, aoff, static_cast<const T*>(nullptr), Activation::none,
              dx);
}

template <class T>
void lowered_backward_weights(const Conv2dGeom& g, const T* x, const T* dy, T* dw) {
  const LoweredKernels<T>& lk = lowered_kernels<T>();
  const Plan pl = plan_of<T>(g, ConvDir::backward_weights);
  if (pl.chan) return channels_backward_weights(g, pl, x, dy, dw);
  const Lowering &in = pl.in, &dl = pl.dyl;
  const index_t G = g.groups(), M = pl.M, L = pl.L, taps = pl.taps;
  T* xt = scratch_aligned<T>(1, in.size);
  T* dyt = scratch_aligned<T>(2, dl.size);
  build_slack(in, xt);
  build_slack(dl, dyt);
  const index_t npan = pl.panels.count();
  const index_t runs = pl.runs;
  // Tasks (run, group, panel, block of tap tiles). With one run a task writes its dw entries
  // itself; with more, each run's lane sums go to partial[run][gi][m][tap][lane] and the
  // last task of a (group, panel, block) to finish (a counter per block; which task that is
  // does not matter) adds the runs in run order and applies the lane tree.
  const index_t part_run = G * M * taps * L;
  T* partial = runs > 1 ? scratch_aligned<T>(3, runs * part_run) : nullptr;
  std::vector<index_t> task_panel, task_gi, task_blk, block_id;
  index_t blocks_total = 0;
  for (index_t gi = 0; gi < G; ++gi)
    for (index_t pi = 0; pi < npan; ++pi)
      for (index_t blk = 0; blk < pl.blocks[std::size_t(pi)]; ++blk) {
        task_gi.push_back(gi);
        task_panel.push_back(pi);
        task_blk.push_back(blk);
        block_id.push_back(blocks_total++);
      }
  std::unique_ptr<std::atomic<index_t>[]> done;
  if (runs > 1) done.reset(new std::atomic<index_t>[std::size_t(blocks_total)]());
  const index_t tasks = runs * blocks_total, items_x = in.items(), items = items_x + dl.items();
  const index_t wq = in.wq;
#pragma omp parallel if (g.flops() >= min_parallel_flops)
  {
#pragma omp for schedule(static)
    for (index_t it = 0; it < items; ++it)
      if (it < items_x)
        build_item(in, x, xt, it);
      else
        build_item(dl, dy, dyt, it - items_x);
    // Static, as run_product's tasks (LeNet conv1 at 2 threads: 0.55x one thread with the
    // tasks dealt out one by one, 1.41x now).
#pragma omp for schedule(static)
    for (index_t t = 0; t < tasks; ++t) {
      const index_t run = t / blocks_total, b = t % blocks_total;
      const index_t gi = task_gi[std::size_t(b)];
      const index_t pi = task_panel[std::size_t(b)], blk = task_blk[std::size_t(b)];
      const int mr = pl.panels.rows(pi), nt = lk.nt[mr];
      const index_t m0 = pl.panels.first[std::size_t(pi)];
      const index_t tb = pl.tile_blk[std::size_t(pi)];
      const index_t tile0 = blk * tb, tile1 = std::min(pl.ntiles[std::size_t(pi)], tile0 + tb);
      const index_t tile_elems = index_t(mr) * nt * L;
      T* acc = scratch_aligned<T>(4, (tile1 - tile0) * tile_elems);
      std::fill(acc, acc + (tile1 - tile0) * tile_elems, T(0));
      const index_t u0 = run * in.units / runs, u1 = (run + 1) * in.units / runs;
      for (index_t u = u0; u < u1; ++u) {
        const T* xu = xt + (u * G + gi) * in.unit_stride();
        const T* du = dyt + (u * G + gi) * dl.unit_stride() + m0 * dl.plane * dl.lanes;
        if (!pl.batch) {
          const index_t steps = pl.dlen / L;
          for (index_t s0 = 0; s0 < steps; s0 += chunk_steps) {
            const index_t cs = std::min(chunk_steps, steps - s0);
            for (index_t tile = tile0; tile < tile1; ++tile)
              lk.dot[mr](1, cs, du + s0 * L, pl.dlen, 0, xu + s0 * L,
                         pl.boff.data() + tile * nt, 0, acc + (tile - tile0) * tile_elems);
          }
        } else {
          const index_t rc = std::max<index_t>(1, chunk_steps / pl.oq);
          for (index_t p0 = 0; p0 < pl.op; p0 += rc) {
            const index_t rows = std::min(rc, pl.op - p0);
            for (index_t tile = tile0; tile < tile1; ++tile)
              lk.dot[mr](rows, pl.oq, du + p0 * pl.oq * L, dl.plane * L, pl.oq * L,
                         xu + p0 * wq * L, pl.boff.data() + tile * nt, wq * L,
                         acc + (tile - tile0) * tile_elems);
          }
        }
      }
      // acc[(m*nt + tap)*L + l] of each tile: dw entry (gi*M + m0 + m, tile*nt + tap)
      auto each_entry = [&](auto f) {
        for (index_t tile = tile0; tile < tile1; ++tile)
          for (int m = 0; m < mr; ++m)
            for (index_t tp = 0; tp < nt && tile * nt + tp < taps; ++tp)
              f((gi * M + m0 + m) * taps + tile * nt + tp,
                acc + (tile - tile0) * tile_elems + (m * nt + tp) * L);
      };
      if (runs == 1) {
        each_entry([&](index_t o, const T* v) { dw[o] = lane_tree(v, L); });
      } else {
        each_entry([&](index_t o, const T* v) {
          std::memcpy(partial + run * part_run + o * L, v, sizeof(T) * std::size_t(L));
        });
        // the last run of this block to finish: dw = tree(((run0 + run1) + run2) + ...)
        if (done[std::size_t(b)].fetch_add(1, std::memory_order_acq_rel) == runs - 1)
          each_entry([&](index_t o, const T*) {
            T v[64];
            std::memcpy(v, partial + o * L, sizeof(T) * std::size_t(L));
            for (index_t r = 1; r < runs; ++r)
              for (index_t l = 0; l < L; ++l) v[l] += partial[r * part_run + o * L + l];
            dw[o] = lane_tree(v, L);
          });
      }
    }
  }
}

template std::string lowered_plan<float>(const Conv2dGeom&, ConvDir);
template std::string lowered_plan<double>(const Conv2dGeom&, ConvDir);
template LoweredWorkspace lowered_workspace<float>(const Conv2dGeom&, ConvDir);
template LoweredWorkspace lowered_workspace<double>(const Conv2dGeom&, ConvDir);
template const char* lowered_tier<float>(const Conv2dGeom&, ConvDir);
template const char* lowered_tier<double>(const Conv2dGeom&, ConvDir);
template void lowered_forward<float>(const Conv2dGeom&, const float*, const float*, const float*,
                                     float*, Activation);
template void lowered_forward<double>(const Conv2dGeom&, const double*, const double*,
                                      const double*, double*, Activation);
template void lowered_backward_data<float>(const Conv2dGeom&, const float*, const float*, float*);
template void lowered_backward_data<double>(const Conv2dGeom&, const double*, const double*,
                                            double*);
template void lowered_backward_weights<float>(const Conv2dGeom&, const float*, const float*,
                                              float*);
template void lowered_backward_weights<double>(const Conv2dGeom&, const double*, const double*,
                                               double*);

}  // namespace tapegrad::fast::detail
