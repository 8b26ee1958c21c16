#!/usr/bin/env python3
"""Writes the small bundled example inputs in examples/data/ (run once; outputs are committed).

A conv2d problem with every option in play: x[2,4,7,7] w[6,2,3,3] b[6], stride 2, pad 1,
dilation 2, groups 2, and an upstream gradient dy of the output's shape [2,6,3,3].
"""
import pathlib
import numpy as np

out = pathlib.Path(__file__).resolve().parent.parent / "examples" / "data" / "conv2d"
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(20261130)
np.save(out / "x.npy", rng.standard_normal((2, 4, 7, 7)))
np.save(out / "w.npy", rng.standard_normal((6, 2, 3, 3)) / 3.0)
np.save(out / "b.npy", rng.standard_normal(6))
# p = floor((7 + 2*1 - 2*(3-1) - 1) / 2) + 1 = 3
np.save(out / "dy.npy", rng.standard_normal((2, 6, 3, 3)))
