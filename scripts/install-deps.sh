#!/usr/bin/env bash
# Installs every Debian package tapegrad's build, tests, benches and demos need.
# Idempotent and non-interactive; as a normal user it uses sudo for apt-get.
#   ./scripts/install-deps.sh           what CI needs: build, tests, benches, demos (PyTorch
#                                       included: tests/verify_cli_test.py runs its results
#                                       through tapegrad verify, and the benches use it as a peer)
#   ./scripts/install-deps.sh --bench   the same (kept so that older instructions still work)
set -euo pipefail

for arg in "$@"; do
  case "$arg" in
    --bench) ;;  # the default now
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "install-deps: error: unknown option '$arg' (expected --bench)" >&2; exit 2 ;;
  esac
done
packages=(
  g++ cmake ninja-build make git pkg-config
  libboost-dev            # Boost.Multiprecision (cpp_bin_float_50), header-only
  librapidcheck-dev       # property tests
  libgtest-dev libgmock-dev
  libbenchmark-dev        # Google Benchmark
  zlib1g-dev              # reading the .gz Fashion-MNIST files
  libzip-dev              # .npz checkpoints and weights
  zipcmp zipmerge ziptool # Debian's libzip CMake config checks that these tools exist
  libplplot-dev plplot-driver-cairo   # training plots (svg, and png through cairo)
  libcli11-dev            # the command line
  nlohmann-json3-dev      # JSON output
  dataset-fashion-mnist   # /usr/share/datasets/fashion-mnist/
  python3 python3-numpy   # the independent NumPy check of `tapegrad ref` (tests only)
  gcovr                   # scripts/coverage.sh (the coverage preset; not run by CI)
  libopenmpi-dev openmpi-bin  # data-parallel training over MPI (TAPEGRAD_MPI), mpirun for its tests
  clang                   # the fuzz and tsan presets (libFuzzer, ThreadSanitizer)
  libclang-rt-14-dev      # clang's sanitizer runtimes and libFuzzer
  libomp-14-dev           # LLVM's OpenMP runtime with Archer, for ThreadSanitizer
  libdnnl-dev             # oneDNN 2.6: the onednn_consumer test, the conv2d_onednn peer bench
  ocl-icd-opencl-dev      # Debian's dnnl-config.cmake requires OpenCL (oneDNN's GPU runtime)
  opencl-headers
  python3-torch           # PyTorch 1.13: tapegrad verify's test, and the peer of the benches
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo; run as root" >&2; exit 1; }
  as_root=(sudo)
fi
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
