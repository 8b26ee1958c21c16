#!/usr/bin/python3
"""tapegrad's conv2d next to its peers, in one run, as a table of GFLOP/s and ratios.

For every shape, direction, dtype and thread count it times, interleaved round by round:
  tapegrad     `tapegrad bench conv2d ... --json` (the fast kernels, *_into with a reused buffer)
  oneDNN       bench/conv2d_onednn, layout `blocked` (oneDNN picks every layout, its best case)
               and `nchw` (PyTorch's plain layouts); float only (oneDNN 2.6 has no CPU double)
  PyTorch      this process: torch.nn.functional.conv2d and aten.convolution_backward
and one core's FMA peak (bench/fma_peak). Each cell is the median over `--rounds` rounds of
each peer's median over its timed calls; peers take turns within a round, so a burst of load
on a shared machine hits them alike. GFLOP/s count 2*N*K*C*R*S*P*Q per direction for all.

  /usr/bin/python3 bench/conv2d_peers.py [--build build/bench] [--threads 1,2]
      [--dtypes float,double] [--shapes lenet1,lenet2,...] [--dirs fwd,bwd_data,bwd_weights]
      [--rounds 3] [--seconds 0.15] [--json out.json]

Needs the bench build (`cmake --preset bench && cmake --build --preset bench`) with oneDNN
found, and Debian's python3-torch (`./scripts/install-deps.sh` installs both); a peer
that is missing is reported as such and its columns stay empty.

All three peers run on GNU OpenMP. Unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set, the
script sets OMP_WAIT_POLICY to `passive` for all of them: on a machine shared with other work,
threads that spin while they wait take the core the working thread needs (a lenet5 step at 2
threads took 568 ms instead of 8 ms with the default policy at load 6 on 2 cores). Passive
threads sleep at every barrier, though, and waking one costs about 50 us on the 2-core VM,
which is most of a LeNet-sized call at 2 threads (0.1-0.3 ms). On a quiet machine, measure
2-thread scaling with GOMP_SPINCOUNT=1000000 instead (the README's table was): threads spin
between back-to-back calls and sleep once a million spins pass idle, so PyTorch's threads in
this process do not spin through the other peers' turns. 10000000 still disturbed the cells
after PyTorch's, and OMP_WAIT_POLICY=active makes them spin forever: the large shapes'
2-thread cells then measured 0.8x one thread for tapegrad and oneDNN.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

if "GOMP_SPINCOUNT" not in os.environ:  # before torch loads libgomp; see above
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")

SHAPES = {  # name: (N, C, H, W, K, R, S, stride, pad)
    "lenet1": ("LeNet conv1", (64, 1, 28, 28, 6, 5, 5, 1, 2)),
    "lenet2": ("LeNet conv2", (64, 6, 14, 14, 16, 5, 5, 1, 0)),
    "resnet": ("ResNet 3x3", (8, 64, 56, 56, 64, 3, 3, 1, 1)),
    "stem": ("ResNet stem", (4, 3, 224, 224, 64, 7, 7, 2, 3)),
    "vgg": ("VGG-ish", (8, 128, 28, 28, 128, 3, 3, 1, 1)),
}
DIRS = ("fwd", "bwd_data", "bwd_weights")
LARGE = ("resnet", "stem", "vgg")


def flops_of(shape):
    n, c, h, w, k, r, s, st, pad = shape
    p = (h + 2 * pad - r) // st + 1
    q = (w + 2 * pad - s) // st + 1
    return 2.0 * n * k * c * r * s * p * q


def fail(msg):
    print(f"conv2d_peers: error: {msg}", file=sys.stderr)
    sys.exit(2)


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def repeats_for(shape, seconds, guess_gflops=40.0):
    """Timed calls per measurement: about `seconds` at a guessed speed, 3 to 200."""
    est = flops_of(shape) / (guess_gflops * 1e9)
    return max(3, min(200, int(seconds / est)))


class Tapegrad:
    name = "tapegrad"

    def __init__(self, exe):
        self.exe = exe

    def time(self, shape, d, dtype, threads, repeat):
        j = run_json([self.exe, "bench", "conv2d", "--shape", ",".join(map(str, shape)),
                      "--dir", d, "--dtype", dtype, "--threads", str(threads),
                      "--repeat", str(repeat), "--json"])
        return j["median_ms"], j.get("isa", "")


class OneDnn:
    def __init__(self, exe, layout):
        self.exe, self.layout = exe, layout
        self.name = f"onednn_{layout}"

    def time(self, shape, d, dtype, threads, repeat):
        if dtype != "float":
            return None, ""
        j = run_json([self.exe, "--shape", ",".join(map(str, shape)), "--dir", d,
                      "--layout", self.layout, "--threads", str(threads),
                      "--repeat", str(repeat)])
        return j["median_ms"], j["impl"]


class Torch:
    name = "pytorch"

    def __init__(self):
        import torch  # Debian's python3-torch
        self.torch = torch

    def time(self, shape, d, dtype, threads, repeat):
        torch = self.torch
        torch.set_num_threads(threads)
        n, c, h, w, k, r, s, st, pad = shape
        tdt = torch.float32 if dtype == "float" else torch.float64
        g = torch.Generator().manual_seed(1)
        x = torch.rand(n, c, h, w, generator=g, dtype=tdt) * 2 - 1
        wt = torch.rand(k, c, r, s, generator=g, dtype=tdt) * 2 - 1
        b = torch.rand(k, generator=g, dtype=tdt) * 2 - 1
        with torch.no_grad():
            y = torch.nn.functional.conv2d(x, wt, b, st, pad)
            dy = torch.rand(y.shape, generator=g, dtype=tdt) * 2 - 1
            bw = torch.ops.aten.convolution_backward
            if d == "fwd":
                fn = lambda: torch.nn.functional.conv2d(x, wt, b, st, pad)
            elif d == "bwd_data":
                fn = lambda: bw(dy, x, wt, [k], [st, st], [pad, pad], [1, 1], False, [0, 0], 1,
                                [True, False, False])
            else:
                fn = lambda: bw(dy, x, wt, [k], [st, st], [pad, pad], [1, 1], False, [0, 0], 1,
                                [False, True, False])
            fn()
            fn()
            ms = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn()
                ms.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ms), ""


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None else a / b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build/bench")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="float,double")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--dirs", default=",".join(DIRS))
    ap.add_argument("--peers", default="onednn,pytorch",
                    help="peers next to tapegrad: some of onednn,pytorch (or none)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.15,
                    help="approximate time of one peer's measurement")
    ap.add_argument("--json", help="also write every measurement to this file")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    dtypes = a.dtypes.split(",")
    shapes = a.shapes.split(",")
    dirs = a.dirs.split(",")
    for s in shapes:
        if s not in SHAPES:
            fail(f"--shapes: unknown shape '{s}', expected some of {','.join(SHAPES)}")
    for d in dirs:
        if d not in DIRS:
            fail(f"--dirs: unknown direction '{d}', expected some of {','.join(DIRS)}")
    for t in dtypes:
        if t not in ("float", "double"):
            fail(f"--dtypes: unknown dtype '{t}', expected float and/or double")
    want = [p for p in a.peers.split(",") if p and p != "none"]
    for p in want:
        if p not in ("onednn", "pytorch"):
            fail(f"--peers: unknown peer '{p}', expected some of onednn,pytorch")
    if a.rounds < 1 or any(t < 1 for t in threads):
        fail("--rounds and --threads must be positive")

    exe = os.path.join(a.build, "tapegrad")
    if not os.path.exists(exe):
        fail(f"{exe} not found: build it first (cmake --preset bench && cmake --build --preset bench)")
    peers = [Tapegrad(exe)]
    missing = []
    dnnl_exe = os.path.join(a.build, "bench", "conv2d_onednn")
    if "onednn" in want:
        if os.path.exists(dnnl_exe):
            peers += [OneDnn(dnnl_exe, "blocked"), OneDnn(dnnl_exe, "nchw")]
        else:
            missing.append(f"oneDNN ({dnnl_exe} not built: install-deps.sh, then "
                           "reconfigure)")
    if "pytorch" in want:
        try:
            peers.append(Torch())
        except ImportError:
            missing.append("PyTorch (python3-torch not importable: install-deps.sh)")
    peak_exe = os.path.join(a.build, "bench", "fma_peak")
    peak = run_json([peak_exe]) if os.path.exists(peak_exe) else None

    # results[(shape, dir, dtype, threads, peer)] = list of per-round median ms
    results, impls = {}, {}
    cells = [(s, d, t, th) for s in shapes for t in dtypes for th in threads for d in dirs]
    for rnd in range(a.rounds):
        for i, (s, d, t, th) in enumerate(cells):
            print(f"\rround {rnd + 1}/{a.rounds}, cell {i + 1}/{len(cells)}", end="",
                  file=sys.stderr, flush=True)
            shape = SHAPES[s][1]
            rep = repeats_for(shape, a.seconds)
            for p in peers:
                ms, impl = p.time(shape, d, t, th, rep)
                if ms is not None:
                    results.setdefault((s, d, t, th, p.name), []).append(ms)
                    impls[(s, d, t, th, p.name)] = impl
    print(file=sys.stderr)

    def gflops(s, d, t, th, peer):
        v = results.get((s, d, t, th, peer))
        return None if not v else flops_of(SHAPES[s][1]) / (statistics.median(v) * 1e-3) / 1e9

    print(f"conv2d, GFLOP/s (median of {a.rounds} rounds, peers interleaved), {cpu_name()}, "
          f"{os.cpu_count()} logical CPUs, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', '(unset)')}, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    if peak:
        print(f"one core's FMA peak ({peak['isa']}): {peak['float_gflops']} GFLOP/s float, "
              f"{peak['double_gflops']} double")
    for m in missing:
        print(f"missing peer: {m}")
    for t in dtypes:
        pk = peak[f"{t}_gflops"] if peak else None
        for th in threads:
            print()
            print(f"### {t}, {th} thread{'s' if th > 1 else ''}")
            print()
            if t == "float":
                print("| shape | dir | tapegrad | oneDNN blocked | oneDNN nchw | PyTorch | "
                      "tapegrad / oneDNN blocked | tapegrad / PyTorch | tapegrad % of peak |")
                print("|---|---|---|---|---|---|---|---|---|")
            else:
                print("| shape | dir | tapegrad | PyTorch | tapegrad / PyTorch | "
                      "tapegrad % of peak |")
                print("|---|---|---|---|---|---|")
            for s in shapes:
                for d in dirs:
                    tg = gflops(s, d, t, th, "tapegrad")
                    pt = gflops(s, d, t, th, "pytorch")
                    pct = None if tg is None or pk is None else 100.0 * tg / (pk * th)
                    label = SHAPES[s][0]
                    if t == "float":
                        ob = gflops(s, d, t, th, "onednn_blocked")
                        on = gflops(s, d, t, th, "onednn_nchw")
                        print(f"| {label} | {d} | {fmt(tg)} | {fmt(ob)} | {fmt(on)} | {fmt(pt)} | "
                              f"{fmt(ratio(tg, ob), 2)} | {fmt(ratio(tg, pt), 2)} | {fmt(pct, 0)} |")
                    else:
                        print(f"| {label} | {d} | {fmt(tg)} | {fmt(pt)} | "
                              f"{fmt(ratio(tg, pt), 2)} | {fmt(pct, 0)} |")
    if len(threads) > 1:
        t1, tn = threads[0], threads[-1]
        print()
        print(f"### scaling: {tn} threads / {t1}")
        print()
        names = [p.name for p in peers]
        print("| shape | dtype | dir | " + " | ".join(names) + " |")
        print("|---|---|---|" + "---|" * len(names))
        for s in shapes:
            for t in dtypes:
                for d in dirs:
                    cells_ = [fmt(ratio(gflops(s, d, t, tn, p), gflops(s, d, t, t1, p)), 2)
                              for p in names]
                    print(f"| {SHAPES[s][0]} | {t} | {d} | " + " | ".join(cells_) + " |")
    print()
    print("oneDNN implementations: " + ", ".join(sorted({v for k, v in impls.items()
                                                         if k[4].startswith("onednn")})))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cpu": cpu_name(), "peak": peak, "rounds": a.rounds,
                       "results": [{"shape": k[0], "dir": k[1], "dtype": k[2], "threads": k[3],
                                    "peer": k[4], "impl": impls.get(k, ""), "median_ms": v}
                                   for k, v in results.items()]}, f, indent=1)


if __name__ == "__main__":
    main()
