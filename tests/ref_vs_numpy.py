#!/usr/bin/python3
"""Checks `tapegrad ref` against an independent float64 NumPy implementation of every op.

Usage: ref_vs_numpy.py TAPEGRAD_BINARY [--cases N] [--seed S]

Each op's forward and vector-Jacobian products are written here from their definitions
(PyTorch conventions: NCHW, weights (K, C/groups, R, S), cross-correlation, zero padding,
floor-mode output size; max-pool ties to the first maximum in row-major window order; avg-pool
divides by kh*kw; relu'(0) = 0), in a different style from the C++ reference kernels: conv2d
and pooling as a sweep over kernel offsets with strided slices of a padded array (the C++
kernels gather one output element at a time), the VJPs as scatter-adds of those slices.

Tolerance. tapegrad's outputs are the 50-digit result rounded once to float64 (error <= 2^-53
relative per element). NumPy's float64 result of a reduction of K terms is off by at most about
gamma(K) * sum|terms| ~ K * 1.1e-16 * K * max|term|; with K <= ~150 terms of size O(1)-O(10)
here that is < 1e-12 of the largest output magnitude. So each tensor must satisfy
    max|tapegrad - numpy| <= 1e-12 * max|numpy|
(exact equality where numpy's tensor is all zeros). A real bug (wrong index, missing term,
wrong padding) produces errors of the order of the values themselves, 1e12 times larger; the
self-check at the start verifies that the checker does flag a perturbation of 1e-9 relative.

--out-dtype float32 is checked too, on a few cases: every float32 element must equal the numpy
float64 value rounded to float32, or be its float32 neighbour (numpy's ~1e-14 error can move
a value across a float32 rounding boundary only when it lies that close to one).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

REL_TOL = 1e-12


# ----------------------------------------------------------------------------- the definitions

def out_size(n, k, stride, pad, dil=1):
    return (n + 2 * pad - dil * (k - 1) - 1) // stride + 1


def pad_hw(x, ph, pw, value=0.0):
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def conv2d(x, w, b, stride, pad, dil, groups):
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    kg = k // groups
    p = out_size(h, r, stride[0], pad[0], dil[0])
    q = out_size(wd, s, stride[1], pad[1], dil[1])
    xp = pad_hw(x, *pad)
    y = np.zeros((n, k, p, q))
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg]
        for i in range(r):
            for j in range(s):
                hs, ws = i * dil[0], j * dil[1]
                patch = xg[:, :, hs:hs + stride[0] * (p - 1) + 1:stride[0],
                           ws:ws + stride[1] * (q - 1) + 1:stride[1]]  # (n, cg, p, q)
                y[:, g * kg:(g + 1) * kg] += np.einsum('ncpq,kc->nkpq', patch, wg[:, :, i, j])
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_vjp(x, w, dy, stride, pad, dil, groups):
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    kg = k // groups
    p, q = dy.shape[2], dy.shape[3]
    xp = pad_hw(x, *pad)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for g in range(groups):
        cs, ks = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for i in range(r):
            for j in range(s):
                hs, ws = i * dil[0], j * dil[1]
                sl = (slice(None), cs, slice(hs, hs + stride[0] * (p - 1) + 1, stride[0]),
                      slice(ws, ws + stride[1] * (q - 1) + 1, stride[1]))
                # y[n,k,p,q] += sum_c patch[n,c,p,q] w[k,c,i,j]: both adjoints at once
                dxp[sl] += np.einsum('nkpq,kc->ncpq', dy[:, ks], w[ks, :, i, j])
                dw[ks, :, i, j] += np.einsum('nkpq,ncpq->kc', dy[:, ks], xp[sl])
    dx = dxp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd]
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db


def max_pool2d(x, kernel, stride, pad):
    n, c, h, wd = x.shape
    p = out_size(h, kernel[0], stride[0], pad[0])
    q = out_size(wd, kernel[1], stride[1], pad[1])
    xp = pad_hw(x, *pad, value=-np.inf)  # padding never wins (every window has a real element)
    # windows[n,c,p,q, i*kw+j] in row-major window order: argmax takes the first maximum
    win = np.empty((n, c, p, q, kernel[0] * kernel[1]))
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            win[..., i * kernel[1] + j] = xp[:, :, i:i + stride[0] * (p - 1) + 1:stride[0],
                                             j:j + stride[1] * (q - 1) + 1:stride[1]]
    return win.max(axis=-1), win.argmax(axis=-1)


def max_pool2d_vjp(x, dy, kernel, stride, pad):
    _, arg = max_pool2d(x, kernel, stride, pad)
    n, c, h, wd = x.shape
    dxp = np.zeros((n, c, h + 2 * pad[0], wd + 2 * pad[1]))
    for idx in np.ndindex(*dy.shape):
        nn, cc, pp, qq = idx
        i, j = divmod(int(arg[idx]), kernel[1])
        dxp[nn, cc, pp * stride[0] + i, qq * stride[1] + j] += dy[idx]
    return dxp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd]


def avg_pool2d(x, kernel, stride, pad):
    n, c, h, wd = x.shape
    p = out_size(h, kernel[0], stride[0], pad[0])
    q = out_size(wd, kernel[1], stride[1], pad[1])
    xp = pad_hw(x, *pad)
    y = np.zeros((n, c, p, q))
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            y += xp[:, :, i:i + stride[0] * (p - 1) + 1:stride[0], j:j + stride[1] * (q - 1) + 1:stride[1]]
    return y / (kernel[0] * kernel[1])  # count_include_pad=True


def avg_pool2d_vjp(x, dy, kernel, stride, pad):
    n, c, h, wd = x.shape
    p, q = dy.shape[2], dy.shape[3]
    dxp = np.zeros((n, c, h + 2 * pad[0], wd + 2 * pad[1]))
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            dxp[:, :, i:i + stride[0] * (p - 1) + 1:stride[0], j:j + stride[1] * (q - 1) + 1:stride[1]] += \
                dy / (kernel[0] * kernel[1])
    return dxp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd]


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1/(1+exp(-x)), another formula on purpose


# Each op: (forward, vjp) over a dict of inputs; vjp returns {name: gradient}.
def ref_numpy(op, inp, opt):
    x, dy = inp['x'], inp.get('dy')
    if op == 'conv2d':
        args = (opt['stride'], opt['pad'], opt['dilation'], opt['groups'])
        y = conv2d(x, inp['w'], inp.get('b'), *args)
        g = {}
        if dy is not None:
            dx, dw, db = conv2d_vjp(x, inp['w'], dy, *args)
            g = {'dx': dx, 'dw': dw}
            if 'b' in inp:
                g['db'] = db
        return y, g
    if op == 'linear':
        w, b = inp['w'], inp.get('b')
        y = x @ w.T + (b if b is not None else 0)
        g = {}
        if dy is not None:
            g = {'dx': dy @ w, 'dw': dy.T @ x}
            if b is not None:
                g['db'] = dy.sum(axis=0)
        return y, g
    if op == 'relu':
        return np.maximum(x, 0), ({'dx': dy * (x > 0)} if dy is not None else {})
    if op == 'sigmoid':
        y = sigmoid(x)
        return y, ({'dx': dy * y * (1 - y)} if dy is not None else {})
    if op == 'tanh':
        y = np.tanh(x)
        return y, ({'dx': dy * (1 - y * y)} if dy is not None else {})
    if op == 'softmax':
        y = softmax(x)
        return y, ({'dx': y * (dy - (y * dy).sum(axis=1, keepdims=True))} if dy is not None else {})
    if op == 'log_softmax':
        y = log_softmax(x)
        return y, ({'dx': dy - np.exp(y) * dy.sum(axis=1, keepdims=True)} if dy is not None else {})
    if op == 'flatten':
        return x.reshape(x.shape[0], -1), ({'dx': dy.reshape(x.shape)} if dy is not None else {})
    if op == 'max_pool2d':
        y, _ = max_pool2d(x, opt['kernel'], opt['stride'], opt['pad'])
        return y, ({'dx': max_pool2d_vjp(x, dy, opt['kernel'], opt['stride'], opt['pad'])}
                   if dy is not None else {})
    if op == 'avg_pool2d':
        y = avg_pool2d(x, opt['kernel'], opt['stride'], opt['pad'])
        return y, ({'dx': avg_pool2d_vjp(x, dy, opt['kernel'], opt['stride'], opt['pad'])}
                   if dy is not None else {})
    if op == 'mse_loss':
        t = inp['target']
        y = np.array(((x - t) ** 2).mean())
        return y, ({'dx': dy * 2 * (x - t) / x.size} if dy is not None else {})
    if op == 'cross_entropy':
        t = inp['target']
        n = x.shape[0]
        ls = log_softmax(x)
        y = np.array(-ls[np.arange(n), t].mean())
        g = {}
        if dy is not None:
            onehot = np.zeros_like(x)
            onehot[np.arange(n), t] = 1
            g = {'dx': dy * (np.exp(ls) - onehot) / n}
        return y, g
    raise ValueError(op)


# ----------------------------------------------------------------------------- random cases

def random_case(rng, op):
    """Returns (inputs: dict name -> array, options: dict, cli option list)."""
    def arr(*shape):
        a = rng.standard_normal(shape)
        # about a third of the inputs in float32, converted exactly by both sides
        return a.astype(np.float32) if rng.random() < 0.33 else a

    opt, cli = {}, []
    if op == 'conv2d':
        groups = int(rng.integers(1, 4))
        cg, kg = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        r, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        # input at least as large as the dilated kernel minus padding
        h = max(1, dil[0] * (r - 1) + 1 - 2 * pad[0]) + int(rng.integers(0, 5))
        w = max(1, dil[1] * (s - 1) + 1 - 2 * pad[1]) + int(rng.integers(0, 5))
        n = int(rng.integers(1, 3))
        inp = {'x': arr(n, groups * cg, h, w), 'w': arr(groups * kg, cg, r, s)}
        if rng.random() < 0.7:
            inp['b'] = arr(groups * kg)
        opt = {'stride': stride, 'pad': pad, 'dilation': dil, 'groups': groups}
        cli = ['--stride', '%d,%d' % stride, '--pad', '%d,%d' % pad,
               '--dilation', '%d,%d' % dil, '--groups', str(groups)]
    elif op == 'linear':
        n, fi, fo = (int(v) for v in rng.integers(1, 7, size=3))
        inp = {'x': arr(n, fi), 'w': arr(fo, fi)}
        if rng.random() < 0.7:
            inp['b'] = arr(fo)
    elif op in ('relu', 'sigmoid', 'tanh', 'softmax', 'log_softmax', 'flatten'):
        rank = int(rng.integers(2, 5))
        shape = [int(v) for v in rng.integers(1, 5, size=rank)]
        inp = {'x': arr(*shape) * 3}
    elif op in ('max_pool2d', 'avg_pool2d'):
        kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pad = (int(rng.integers(0, kernel[0] // 2 + 1)), int(rng.integers(0, kernel[1] // 2 + 1)))
        h = kernel[0] + int(rng.integers(0, 5))
        w = kernel[1] + int(rng.integers(0, 5))
        inp = {'x': arr(int(rng.integers(1, 3)), int(rng.integers(1, 4)), h, w)}
        opt = {'kernel': kernel, 'stride': stride, 'pad': pad}
        cli = ['--kernel', '%d,%d' % kernel, '--stride', '%d,%d' % stride, '--pad', '%d,%d' % pad]
    elif op == 'mse_loss':
        shape = [int(v) for v in rng.integers(1, 5, size=int(rng.integers(1, 4)))]
        inp = {'x': arr(*shape), 'target': arr(*shape)}
    elif op == 'cross_entropy':
        n, c = int(rng.integers(1, 6)), int(rng.integers(1, 7))
        inp = {'x': arr(n, c) * 3, 'target': rng.integers(0, c, size=n).astype(np.int64)}
    else:
        raise ValueError(op)
    return inp, opt, cli


OPS = ['conv2d'] * 10 + ['linear'] * 3 + ['max_pool2d'] * 3 + ['avg_pool2d'] * 3 + \
      ['relu', 'sigmoid', 'tanh', 'softmax', 'log_softmax', 'flatten'] + \
      ['mse_loss'] * 2 + ['cross_entropy'] * 2


def max_rel_err(a, e):
    scale = np.max(np.abs(e)) if e.size else 0.0
    err = np.max(np.abs(a - e)) if e.size else 0.0
    if scale == 0:
        return 0.0 if err == 0 else np.inf
    return err / scale


def run_case(binary, tmp, k, op, inp, opt, cli, out_dtype):
    d = os.path.join(tmp, 'case%02d' % k)
    os.makedirs(d)
    y_np, _ = ref_numpy(op, {n: v.astype(np.float64) if v.dtype != np.int64 else v
                             for n, v in inp.items()}, opt)
    dy = np.asarray(np.random.default_rng(1000 + k).standard_normal(y_np.shape))
    inputs = dict(inp, dy=dy)
    args = [binary, 'ref', op, '--out', os.path.join(d, 'out'), '--out-dtype', out_dtype] + cli
    for name, v in inputs.items():
        path = os.path.join(d, name + '.npy')
        np.save(path, v)
        args += ['--' + name, path]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        return ['exit %d: %s' % (proc.returncode, proc.stderr.strip())]
    y_np, grads = ref_numpy(op, {n: v.astype(np.float64) if v.dtype != np.int64 else v
                                 for n, v in inputs.items()}, opt)
    expected = dict(grads, y=y_np)
    problems = []
    written = sorted(f[:-4] for f in os.listdir(os.path.join(d, 'out')))
    if written != sorted(expected):
        problems.append('wrote %s, expected %s' % (written, sorted(expected)))
    for name, e in expected.items():
        path = os.path.join(d, 'out', name + '.npy')
        if not os.path.exists(path):
            continue
        a = np.load(path)
        if a.shape != e.shape:
            problems.append('%s shape %s, expected %s' % (name, a.shape, e.shape))
            continue
        if out_dtype == 'float64':
            if a.dtype != np.float64:
                problems.append('%s dtype %s' % (name, a.dtype))
            rel = max_rel_err(a, e)
            if not rel <= REL_TOL:
                problems.append('%s max error %.3g of max|value| > %g' % (name, rel, REL_TOL))
        else:
            if a.dtype != np.float32:
                problems.append('%s dtype %s' % (name, a.dtype))
            e32 = e.astype(np.float32)
            ok = (a == e32) | (a == np.nextafter(e32, np.float32(np.inf))) | \
                 (a == np.nextafter(e32, np.float32(-np.inf)))
            if not ok.all():
                problems.append('%s: %d float32 elements more than 1 ulp from numpy'
                                % (name, int((~ok).sum())))
    return problems


def self_check():
    """The checker must flag a small perturbation (it can fail)."""
    e = np.linspace(-2, 3, 12)
    a = e.copy()
    a[5] *= 1 + 1e-9
    assert max_rel_err(e, e) == 0
    assert max_rel_err(a, e) > REL_TOL, 'checker cannot see a 1e-9 error'


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    seed = int(sys.argv[sys.argv.index('--seed') + 1]) if '--seed' in sys.argv else 20261130
    self_check()
    rng = np.random.default_rng(seed)
    failures = 0
    with tempfile.TemporaryDirectory(prefix='tapegrad_ref_vs_numpy_') as tmp:
        for k, op in enumerate(OPS):
            inp, opt, cli = random_case(rng, op)
            # every 4th case also checks the float32 output rounding
            for out_dtype in (['float64', 'float32'] if k % 4 == 0 else ['float64']):
                problems = run_case(binary, tmp, k if out_dtype == 'float64' else 100 + k, op,
                                    inp, opt, cli, out_dtype)
                shapes = ' '.join('%s%s%s' % (n, list(v.shape), '/f32' if v.dtype == np.float32 else '')
                                  for n, v in inp.items())
                status = 'ok  ' if not problems else 'FAIL'
                print('%s %-13s %-8s %s %s' % (status, op, out_dtype, shapes, ' '.join(cli)))
                for p in problems:
                    print('       ' + p)
                failures += bool(problems)
    print('%d case(s) failed' % failures if failures else 'all cases agree with numpy')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
