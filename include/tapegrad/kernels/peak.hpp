// The machine's measured floating-point peak for the instruction set the fast kernels use
// (fast::isa()): independent vector fused multiply-add chains, enough of them to cover the
// FMA units' latency, timed for a fraction of a second. What profiles and benches divide by
// to say "% of peak".
//
//   per core   one thread
//   all cores  `threads` threads at once (OpenMP), the sum of their work over the wall time
#pragma once

namespace tapegrad::fast {

struct Peak {
  const char* isa = "";
  int threads = 1;
  double f32_core = 0, f64_core = 0;  // GFLOP/s (an FMA counts 2 flops)
  double f32_all = 0, f64_all = 0;
};

// Measures (about 4 * seconds in all). threads <= 0: OpenMP's default.
Peak measure_peak(int threads = 0, double seconds = 0.25);

// One core's peak in GFLOP/s for float or double, measured once per process and instruction
// set (cached).
double core_peak_gflops(bool is_double);

}  // namespace tapegrad::fast
