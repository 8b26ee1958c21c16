#!/usr/bin/env bash
# A tour: the tutorial's experiment (the seed network trained on the synthetic set, its loss
# falling, the plot written), the four-way gradient check of that network and of LeNet-5, the
# oracle on a bundled conv2d problem, then one fast kernel timed.
# Usage: scripts/demo.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build/release}
tg=$build/tapegrad
[ -x "$tg" ] || { echo "demo: $tg not found; build first (see README Quick start)" >&2; exit 2; }

step() { printf '\n==> %s\n' "$*"; }

step "tapegrad train --model seed   (the tutorial's experiment: 10,000 full-batch steps)"
"$tg" train --model seed --out "$here/out/seed"
step "tapegrad check --model seed   (the tutorial's network, four ways, double)"
"$tg" check --model seed
step "tapegrad check --model lenet5 --dtype float   (LeNet-5, four ways, float)"
"$tg" check --model lenet5 --dtype float

data=$here/examples/data/conv2d
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
step "tapegrad ref conv2d ... --dy   (50-digit outputs and VJPs of a bundled problem)"
"$tg" ref conv2d --x "$data/x.npy" --w "$data/w.npy" --b "$data/b.npy" --dy "$data/dy.npy" \
  --stride 2 --pad 1 --dilation 2 --groups 2 --out "$out/ref64"
"$tg" ref conv2d --x "$data/x.npy" --w "$data/w.npy" --b "$data/b.npy" \
  --stride 2 --pad 1 --dilation 2 --groups 2 --out "$out/ref32" --out-dtype float32
step "tapegrad bench conv2d   (LeNet conv2, fast kernel, float, forward)"
"$tg" bench conv2d --shape 64,6,14,14,16,5,5,1,0 --dir fwd --dtype float --threads 1
