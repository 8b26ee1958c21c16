// conv2d_onednn: times oneDNN's convolution on one shape, direction, layout and thread count,
// the peer that bench/conv2d_peers.py puts next to tapegrad. Built only when CMake finds
// oneDNN (Debian libdnnl-dev; ./scripts/install-deps.sh --bench installs it).
//
//   conv2d_onednn --shape N,C,H,W,K,R,S,stride,pad --dir fwd|bwd_data|bwd_weights
//                 --layout blocked|nchw [--threads T] [--repeat R]
//
// Prints one JSON object: median and minimum milliseconds of R timed calls (after two
// warm-ups), GFLOP/s at the median (2*N*K*C*R*S*P*Q per direction, the count tapegrad uses),
// and the implementation oneDNN chose. Only the primitive's execution is timed, never a
// reorder between layouts (as benchdnn does): `blocked` lets oneDNN pick every memory layout
// (format_tag::any, its best case), `nchw` pins the plain PyTorch layouts (NCHW / OIHW).
// float only: oneDNN 2.6 has no double convolution on the CPU. Forward includes the bias;
// backward-weights computes dw only (no bias gradient), as tapegrad's kernel does.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct Options {
  std::vector<long> shape;  // N,C,H,W,K,R,S,stride,pad
  std::string dir = "fwd", layout = "blocked";
  int threads = 1, repeat = 10;
};

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "conv2d_onednn: error: %s\n", what.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage_error("option " + a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--shape") {
      std::stringstream ss(v);
      std::string item;
      while (std::getline(ss, item, ',')) {
        char* end = nullptr;
        const long x = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || x < 0) usage_error("--shape: bad number '" + item + "'");
        o.shape.push_back(x);
      }
    } else if (a == "--dir") {
      o.dir = v;
    } else if (a == "--layout") {
      o.layout = v;
    } else if (a == "--threads") {
      o.threads = std::atoi(v.c_str());
    } else if (a == "--repeat") {
      o.repeat = std::atoi(v.c_str());
    } else {
      usage_error("unknown option " + a);
    }
  }
  if (o.shape.size() != 9) usage_error("--shape expects 9 integers N,C,H,W,K,R,S,stride,pad");
  if (o.dir != "fwd" && o.dir != "bwd_data" && o.dir != "bwd_weights")
    usage_error("--dir expects fwd, bwd_data or bwd_weights");
  if (o.layout != "blocked" && o.layout != "nchw") usage_error("--layout expects blocked or nchw");
  if (o.threads < 1 || o.repeat < 1) usage_error("--threads and --repeat must be positive");
  return o;
}

void fill_random(memory& m, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto* p = static_cast<float*>(m.get_data_handle());
  const std::size_t count = m.get_desc().get_size() / sizeof(float);
  for (std::size_t i = 0; i < count; ++i) p[i] = u(rng);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const long N = o.shape[0], C = o.shape[1], H = o.shape[2], W = o.shape[3], K = o.shape[4],
             R = o.shape[5], S = o.shape[6], st = o.shape[7], pad = o.shape[8];
  const long P = (H + 2 * pad - R) / st + 1, Q = (W + 2 * pad - S) / st + 1;
  if (N < 1 || C < 1 || K < 1 || R < 1 || S < 1 || st < 1 || P < 1 || Q < 1)
    usage_error("--shape gives an empty convolution");
  // oneDNN wants the right padding that makes its output size P (PyTorch's floor mode).
  const long pad_rh = (P - 1) * st + R - H - pad, pad_rw = (Q - 1) * st + S - W - pad;
  omp_set_num_threads(o.threads);
  try {
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::stream strm(eng);
    const memory::dims xd{N, C, H, W}, wd{K, C, R, S}, bd{K}, yd{N, K, P, Q};
    const memory::dims strides{st, st}, pl{pad, pad}, pr{pad_rh, pad_rw};
    const bool blocked = o.layout == "blocked";
    const memory::desc x_md(xd, dt::f32, blocked ? tag::any : tag::nchw);
    const memory::desc w_md(wd, dt::f32, blocked ? tag::any : tag::oihw);
    const memory::desc b_md(bd, dt::f32, tag::x);
    const memory::desc y_md(yd, dt::f32, blocked ? tag::any : tag::nchw);
    const auto alg = dnnl::algorithm::convolution_direct;
    dnnl::convolution_forward::primitive_desc fwd_pd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, x_md, w_md, b_md,
                                        y_md, strides, pl, pr),
        eng);
    dnnl::primitive prim;
    std::unordered_map<int, memory> args;
    std::string impl;
    std::mt19937 rng(1);
    auto make = [&](const memory::desc& md) {
      memory m(md, eng);
      fill_random(m, rng);
      return m;
    };
    if (o.dir == "fwd") {
      prim = dnnl::convolution_forward(fwd_pd);
      args = {{DNNL_ARG_SRC, make(fwd_pd.src_desc())},
              {DNNL_ARG_WEIGHTS, make(fwd_pd.weights_desc())},
              {DNNL_ARG_BIAS, make(fwd_pd.bias_desc())},
              {DNNL_ARG_DST, make(fwd_pd.dst_desc())}};
      impl = fwd_pd.impl_info_str();
    } else if (o.dir == "bwd_data") {
      dnnl::convolution_backward_data::primitive_desc pd(
          dnnl::convolution_backward_data::desc(alg, x_md, w_md, y_md, strides, pl, pr), eng,
          fwd_pd);
      prim = dnnl::convolution_backward_data(pd);
      args = {{DNNL_ARG_DIFF_DST, make(pd.diff_dst_desc())},
              {DNNL_ARG_WEIGHTS, make(pd.weights_desc())},
              {DNNL_ARG_DIFF_SRC, make(pd.diff_src_desc())}};
      impl = pd.impl_info_str();
    } else {
      dnnl::convolution_backward_weights::primitive_desc pd(
          dnnl::convolution_backward_weights::desc(alg, x_md, w_md, y_md, strides, pl, pr), eng,
          fwd_pd);
      prim = dnnl::convolution_backward_weights(pd);
      args = {{DNNL_ARG_SRC, make(pd.src_desc())},
              {DNNL_ARG_DIFF_DST, make(pd.diff_dst_desc())},
              {DNNL_ARG_DIFF_WEIGHTS, make(pd.diff_weights_desc())}};
      impl = pd.impl_info_str();
    }
    for (int i = 0; i < 2; ++i) prim.execute(strm, args);
    strm.wait();
    std::vector<double> ms;
    for (int i = 0; i < o.repeat; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      prim.execute(strm, args);
      strm.wait();
      const auto t1 = std::chrono::steady_clock::now();
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const std::size_t m = ms.size();
    const double median = m % 2 ? ms[m / 2] : 0.5 * (ms[m / 2 - 1] + ms[m / 2]);
    const double flops = 2.0 * double(N) * double(K) * double(C) * double(R) * double(S) *
                         double(P) * double(Q);
    std::printf(
        "{\"peer\": \"onednn\", \"layout\": \"%s\", \"dir\": \"%s\", \"threads\": %d, "
        "\"dnnl_version\": \"%d.%d.%d\", \"impl\": \"%s\", \"flops\": %.17g, "
        "\"median_ms\": %.6g, \"min_ms\": %.6g, \"gflops\": %.6g}\n",
        o.layout.c_str(), o.dir.c_str(), o.threads, dnnl::version()->major,
        dnnl::version()->minor, dnnl::version()->patch, impl.c_str(), flops, median, ms.front(),
        flops / (median * 1e-3) / 1e9);
  } catch (const dnnl::error& e) {
    std::fprintf(stderr, "conv2d_onednn: error: oneDNN: %s (status %d)\n", e.what(),
                 int(e.status));
    return 1;
  }
  return 0;
}
