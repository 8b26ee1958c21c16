#!/usr/bin/env bash
# Installs every Debian package tapegrad's build, tests, benches and demos need.
# Idempotent and non-interactive; run as root (or through sudo).
set -euo pipefail
packages=(
  g++ cmake ninja-build make git
  libboost-dev            # Boost.Multiprecision (cpp_bin_float_50), header-only
  librapidcheck-dev       # property tests
  libgtest-dev libgmock-dev
  libbenchmark-dev        # Google Benchmark
  zlib1g-dev              # reading the .gz Fashion-MNIST files
  libcli11-dev            # the command line
  nlohmann-json3-dev      # JSON output
  dataset-fashion-mnist   # /usr/share/datasets/fashion-mnist/
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root: sudo $0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
