#!/usr/bin/python3
"""`tapegrad verify` on PyTorch's results (Debian's python3-torch, float32 on CPU): a correct
implementation that tapegrad did not write passes for conv2d (stride, padding, dilation, groups,
bias), linear, avg_pool2d, log_softmax and cross_entropy, forward and every VJP; the same file
with one element perturbed fails (exit 1) and the report names that element; `compare`'s default
tolerance (rtol = 8u) fails some of these correct results, which is why verify derives its own;
bad input is one line and exit 2.

Usage: verify_cli_test.py TAPEGRAD_BINARY   (ctest, label `cli`)
"""
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cli_harness as h  # noqa: E402
from cli_harness import expect_bad_input, run, test  # noqa: E402

TMP = None


def save(name, t):
    p = os.path.join(TMP, name + '.npy')
    np.save(p, t.detach().numpy() if isinstance(t, torch.Tensor) else t)
    return p


def case_conv2d():
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    y = torch.nn.functional.conv2d(x, w, b, stride=2, padding=1, dilation=2, groups=2)
    dy = torch.randn_like(y)
    y.backward(dy)
    f = {n: save('conv_' + n, t) for n, t in
         dict(x=x, w=w, b=b, y=y, dy=dy, dx=x.grad, dw=w.grad, db=b.grad).items()}
    args = ['conv2d', '--x', f['x'], '--w', f['w'], '--b', f['b'], '--stride', '2', '--pad', '1',
            '--dilation', '2', '--groups', '2', '--dy', f['dy']]
    return args, {'--y': f['y'], '--dx': f['dx'], '--dw': f['dw'], '--db': f['db']}


def case_linear():
    x = torch.randn(16, 300, requires_grad=True)
    lin = torch.nn.Linear(300, 20)
    y = lin(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    f = {n: save('lin_' + n, t) for n, t in
         dict(x=x, w=lin.weight, b=lin.bias, y=y, dy=dy, dx=x.grad, dw=lin.weight.grad,
              db=lin.bias.grad).items()}
    args = ['linear', '--x', f['x'], '--w', f['w'], '--b', f['b'], '--dy', f['dy']]
    return args, {'--y': f['y'], '--dx': f['dx'], '--dw': f['dw'], '--db': f['db']}


def case_avg_pool():
    x = torch.randn(2, 3, 11, 10, requires_grad=True)
    y = torch.nn.functional.avg_pool2d(x, 3, stride=2, padding=1)
    dy = torch.randn_like(y)
    y.backward(dy)
    f = {n: save('avg_' + n, t) for n, t in dict(x=x, y=y, dy=dy, dx=x.grad).items()}
    args = ['avg_pool2d', '--x', f['x'], '--kernel', '3', '--stride', '2', '--pad', '1',
            '--dy', f['dy']]
    return args, {'--y': f['y'], '--dx': f['dx']}


def case_log_softmax():
    x = (3 * torch.randn(8, 10)).requires_grad_(True)
    y = torch.log_softmax(x, dim=1)
    dy = torch.randn_like(y)
    y.backward(dy)
    f = {n: save('lsm_' + n, t) for n, t in dict(x=x, y=y, dy=dy, dx=x.grad).items()}
    return ['log_softmax', '--x', f['x'], '--dy', f['dy']], {'--y': f['y'], '--dx': f['dx']}


def case_cross_entropy():
    x = (2 * torch.randn(12, 7)).requires_grad_(True)
    t = torch.randint(0, 7, (12,))
    y = torch.nn.functional.cross_entropy(x, t)
    dy = torch.tensor(1.5)
    y.backward(dy)
    f = {n: save('ce_' + n, v) for n, v in dict(x=x, y=y, dx=x.grad).items()}
    f['t'] = save('ce_t', t.numpy().astype(np.int64))
    f['dy'] = save('ce_dy', np.array(1.5, dtype=np.float32))
    return (['cross_entropy', '--x', f['x'], '--target', f['t'], '--dy', f['dy']],
            {'--y': f['y'], '--dx': f['dx']})


def flat(mine):
    return [a for kv in mine.items() for a in kv]


def perturbed(path, name):
    """A copy of a MINE file with its largest-magnitude element off by 1e-4 relative (tens of
    times any derived float32 bound here): the element and its multi-index."""
    a = np.load(path)
    i = int(np.argmax(np.abs(a)))
    a.flat[i] = np.float32(a.flat[i] * (1 + 1e-4)) if a.ndim else np.float32(a * (1 + 1e-4))
    return save(name, a), '[' + ','.join(str(v) for v in np.unravel_index(i, a.shape)) + ']'


def main():
    global TMP
    h.setup(sys.argv[1])
    torch.manual_seed(12)
    with tempfile.TemporaryDirectory() as tmp:
        TMP = tmp
        cases = {'conv2d': case_conv2d(), 'linear': case_linear(), 'avg_pool2d': case_avg_pool(),
                 'log_softmax': case_log_softmax(), 'cross_entropy': case_cross_entropy()}

        @test
        def pytorch_results_pass_verify_for_every_output():
            for op, (args, mine) in cases.items():
                p = run('verify', *args, *flat(mine))
                assert p.returncode == 0, '%s: exit %d\n%s%s' % (op, p.returncode, p.stdout,
                                                                  p.stderr)
                assert p.stdout.count('\nPASS\n') == len(mine), p.stdout
                assert ('%d outputs judged, all pass' % len(mine)) in p.stdout, p.stdout

        @test
        def one_perturbed_element_fails_verify_and_is_named():
            for op, (args, mine) in cases.items():
                for opt, path in mine.items():
                    bad, idx = perturbed(path, 'bad' + opt[2:])
                    p = run('verify', *args, *flat(dict(mine, **{opt: bad})))
                    assert p.returncode == 1, '%s %s: exit %d\n%s' % (op, opt, p.returncode,
                                                                       p.stdout)
                    name = opt[2:] if opt != '--y' else 'y'
                    assert ('worst element    %s%s' % (name, idx)) in p.stdout, (op, opt, idx,
                                                                                p.stdout)
                    assert 'failing          1 of' in p.stdout, p.stdout
                    # the pattern block (by axis here: verify has no geometry facts): one
                    # element, or every element of a one-element output (a loss)
                    assert ('  pattern          one element only' in p.stdout or
                            '  pattern          every element (1 of 1 fail)' in p.stdout), p.stdout

        @test
        def compare_default_tolerance_rejects_some_correct_results():
            # rtol = 8u is right for results rounded once; sums that cancel need verify's bound.
            rejected = []
            for op, (args, mine) in cases.items():
                ref_dir = os.path.join(TMP, 'ref_' + op)
                p = run('ref', *args, '--out', ref_dir, '--out-dtype', 'float32')
                assert p.returncode == 0, p.stderr
                for opt, path in mine.items():
                    name = 'y' if opt == '--y' else opt[2:]
                    c = run('compare', path, os.path.join(ref_dir, name + '.npy'))
                    assert c.returncode in (0, 1), c.stderr
                    if c.returncode == 1:
                        rejected.append(op + ' ' + name)
            assert len(rejected) >= 3, rejected
            print('     compare (rtol 8u) rejects correct: ' + ', '.join(rejected))

        @test
        def bad_input_is_one_line_and_exit_2():
            args, mine = cases['linear']
            expect_bad_input(run('verify', *args[:7], '--y', mine['--y'], '--dx', mine['--dx']),
                             '--dx needs --dy')
            expect_bad_input(run('verify', *args[:7], '--y', mine['--dx']),
                             "has shape [16,300], expected [16,20]")
            la, lm = cases['log_softmax']
            expect_bad_input(run('verify', *la, '--y', lm['--y'], '--dw', lm['--dx']),
                             'does not take --dw')
            expect_bad_input(run('verify', 'nosuchop', '--x', lm['--y'], '--y', lm['--y']),
                             "unknown op 'nosuchop'")
            expect_bad_input(run('verify', *la, '--y', lm['--y']),
                             '--dy given but none of --dx, --dw, --db')
            t = save('int_y', np.zeros((8, 10), dtype=np.int64))
            expect_bad_input(run('verify', *la[:3], '--y', t),
                             'expected float16, bfloat16, float32 or float64')
            u2 = save('u2_y', np.zeros((8, 10), dtype=np.uint16))
            expect_bad_input(run('verify', *la[:3], '--y', u2), 'pass --dtype bfloat16')
            expect_bad_input(run('verify', *la[:3], '--y', lm['--y'], '--accumulate', 'float8'),
                             '--accumulate must be float16, bfloat16, float32 or float64')
            expect_bad_input(run('verify', *la[:3], '--y', lm['--y'], '--tier', 'lucky'),
                             '--tier must be probabilistic or sound')
            expect_bad_input(run('verify', *la[:3], '--y', lm['--y'], '--dtype', 'float16'),
                             '--dtype must be bfloat16')

        @test
        def nan_in_mine_is_a_failure_not_bad_input():
            la, lm = cases['log_softmax']
            a = np.load(lm['--y'])
            a[2, 3] = np.nan
            p = run('verify', *la[:3], '--y', save('nan_y', a))
            assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
            assert 'element y[2,3] is NaN' in p.stdout, p.stdout

        half_tests()

    return h.finish()


# ---------------------------------------------------------------- 16-bit formats
def ref_flatten(x_path, out_dtype, *extra):
    """tapegrad ref flatten (the identity) writes x rounded once to out_dtype: the CLI's
    conversions, end to end."""
    out = os.path.join(TMP, 'flat_%s_%d' % (out_dtype, len(os.listdir(TMP))))
    p = run('ref', 'flatten', '--x', x_path, '--out-dtype', out_dtype, '--out', out, *extra)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return np.load(os.path.join(out, 'y.npy'))


def neighbour_midpoints(values):
    """The positive finite values of a format (float64, sorted), their midpoints (exact in
    float32: 12 significant bits at most), and one float32 either side of each."""
    v = np.unique(np.abs(values[np.isfinite(values)].astype(np.float64)))
    mid = ((v[:-1] + v[1:]) / 2).astype(np.float32)
    assert np.all(mid.astype(np.float64) == (v[:-1] + v[1:]) / 2)
    out = np.concatenate([mid, np.nextafter(mid, np.float32(0)),
                          np.nextafter(mid, np.float32(np.inf))])
    return np.concatenate([out, -out])


def random_floats(n, lo, hi):
    rng = np.random.default_rng(5)
    mag = np.exp(rng.uniform(np.log(lo), np.log(hi), n)).astype(np.float32)
    return np.where(rng.random(n) < 0.5, -mag, mag).astype(np.float32)


def half_tests():
    @test
    def float16_conversions_match_numpy_on_every_pattern():
        # widening: every finite float16 (63,488 patterns), to float32 and float64
        h = np.arange(65536, dtype=np.uint16).view(np.float16)
        fin = h[np.isfinite(h)].reshape(2, -1)
        x = save('all_f16', fin)
        assert np.load(x).dtype == np.float16
        for dt, npdt in (('float32', np.float32), ('float64', np.float64)):
            got = ref_flatten(x, dt)
            assert got.dtype == npdt
            assert np.array_equal(got.view(np.uint32 if npdt == np.float32 else np.uint64),
                                  fin.astype(npdt).view(np.uint32 if npdt == np.float32
                                                        else np.uint64)), dt
        # narrowing to nearest even: every midpoint of neighbours and a float either side,
        # overflow (65520 is the tie between 65504 and infinity), underflow, 200k random floats
        x32 = np.concatenate([neighbour_midpoints(h), random_floats(200000, 1e-9, 1e6),
                              np.float32([65520, 65519.996, 7e4, 3e-8, 2.0 ** -25, 0, -0.0])])
        got = ref_flatten(save('mids_f32', x32.reshape(1, -1)), 'float16')
        assert got.dtype == np.float16
        with np.errstate(over='ignore'):  # 65520 and beyond become inf, as intended
            want = x32.astype(np.float16).reshape(1, -1)
        bad = np.nonzero(got.view(np.uint16) != want.view(np.uint16))[1]
        assert bad.size == 0, [(float(x32[i]), hex(got.view(np.uint16)[0, i]),
                                hex(want.view(np.uint16)[0, i])) for i in bad[:5]]
        print('     float16: %d patterns widened, %d values narrowed, as NumPy' %
              (fin.size, x32.size))

    @test
    def bfloat16_conversions_match_pytorch_on_every_pattern():
        bits = np.arange(65536, dtype=np.uint16)
        vals = torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16).float().numpy()
        keep = np.isfinite(vals)
        fin_bits = bits[keep].reshape(2, -1)
        # '<u2' under --dtype bfloat16, and '<V2' as ml_dtypes' np.save writes it
        u2 = save('all_bf16_u2', fin_bits)
        v2 = save('all_bf16_v2', fin_bits.view('V2'))
        with open(v2, 'rb') as f:
            assert b"'descr': '|V2'" in f.read(128)
        want = vals[keep].reshape(2, -1)
        for path, extra in ((u2, ('--dtype', 'bfloat16')), (v2, ())):
            got = ref_flatten(path, 'float32', *extra)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), path
        x32 = np.concatenate([neighbour_midpoints(vals), random_floats(200000, 1e-38, 1e38),
                              np.float32([3.4e38, -3.4e38, 1e-40, 0, -0.0])])
        got = ref_flatten(save('mids_bf16', x32.reshape(1, -1)), 'bfloat16')
        assert got.dtype == np.dtype('V2'), got.dtype
        want = torch.from_numpy(x32).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        bad = np.nonzero(got.view(np.uint16).ravel() != want)[0]
        assert bad.size == 0, [(float(x32[i]), hex(got.view(np.uint16).ravel()[i]),
                                hex(want[i])) for i in bad[:5]]
        print('     bfloat16: %d patterns widened, %d values narrowed, as PyTorch' %
              (fin_bits.size, x32.size))

    # linear y = x w^T, K = 1024, inputs exactly float16 / bfloat16.
    rng = np.random.default_rng(9)
    x = rng.uniform(-1, 1, (8, 1024))
    w = rng.uniform(-1, 1, (6, 1024))

    def low_precision_sum(xs, ws, add):
        """y[n,o] = sum_k x[n,k] w[o,k], every product and partial sum rounded by add()."""
        acc = add(np.zeros((xs.shape[0], ws.shape[0])), 0)
        for k in range(xs.shape[1]):
            acc = add(acc, np.outer(xs[:, k], ws[:, k]))
        return acc

    @test
    def float16_results_judged_in_float16_with_the_declared_accumulation():
        xh, wh = x.astype(np.float16), w.astype(np.float16)
        xp, wp = save('h_x', xh), save('h_w', wh)
        exact32 = (xh.astype(np.float32) @ wh.astype(np.float32).T).astype(np.float16)
        # products rounded to float16 (exact in float64 first), sums in float16 arithmetic
        f16acc = low_precision_sum(xh.astype(np.float64), wh.astype(np.float64),
                                   lambda a, b: np.asarray(a, np.float16) +
                                   np.asarray(b).astype(np.float16))
        y32, y16 = save('h_y32', exact32), save('h_y16', f16acc.astype(np.float16))
        base = ['verify', 'linear', '--x', xp, '--w', wp]
        # a float32 accumulation stored in float16 passes, declared or not
        for extra in ((), ('--accumulate', 'float32')):
            p = run(*base, '--y', y32, *extra)
            assert p.returncode == 0, p.stdout + p.stderr
            assert 'verify: linear_forward, float16' in p.stdout, p.stdout
        p = run(*base, '--y', y32, '--accumulate', 'float32')
        assert 'u = 2^-24 (float32 accumulation, then one rounding to float16, u = 2^-11)' in \
            p.stdout, p.stdout
        # a float16 accumulation: correct for what it is (declared float16: passes), caught when
        # float32 is declared
        p = run(*base, '--y', y16)
        assert p.returncode == 0, p.stdout
        p = run(*base, '--y', y16, '--accumulate', 'float32')
        assert p.returncode == 1, p.stdout
        assert 'probabilistic (lambda = ' in p.stdout and ': FAIL; sound: ' in p.stdout, p.stdout
        # ULPs are float16's: one float16 step at one element is "1" in the report
        one = np.load(y32).copy()
        one[3, 2] = np.nextafter(one[3, 2], np.float16(np.inf))
        c = run('compare', save('h_one', one), y32, '--max-ulps', '1')
        assert c.returncode == 0 and 'ULPs of float16' in c.stdout, c.stdout
        assert 'max ULP error    1\n' in c.stdout, c.stdout
        c = run('compare', save('h_one', one), y32, '--max-ulps', '0')
        assert c.returncode == 1, c.stdout

    @test
    def bfloat16_results_from_pytorch_pass_and_a_bfloat16_accumulator_is_caught():
        xb = torch.from_numpy(x).to(torch.bfloat16)
        wb = torch.from_numpy(w).to(torch.bfloat16)
        as_v2 = lambda t: t.view(torch.int16).numpy().view(np.uint16).view('V2')
        xp, wp = save('b_x', as_v2(xb)), save('b_w', as_v2(wb))
        y_torch = torch.nn.functional.linear(xb, wb)  # CPU bfloat16: float32 accumulation
        bf16acc = low_precision_sum(xb.float().numpy(), wb.float().numpy(),
                                    lambda a, b: torch.from_numpy(np.asarray(
                                        np.float32(a) + np.float32(b), dtype=np.float32))
                                    .to(torch.bfloat16).float().numpy())
        yt = save('b_y_torch', as_v2(y_torch))
        ya = save('b_y_acc', as_v2(torch.from_numpy(bf16acc).to(torch.bfloat16)))
        base = ['verify', 'linear', '--x', xp, '--w', wp, '--accumulate', 'float32']
        p = run(*base, '--y', yt)
        assert p.returncode == 0, p.stdout + p.stderr
        assert 'verify: linear_forward, bfloat16' in p.stdout, p.stdout
        p = run(*base, '--y', ya)
        assert p.returncode == 1, p.stdout
        assert ': FAIL; sound: ' in p.stdout, p.stdout
        # --tier sound: the verdict of the sound bound alone
        p = run(*base, '--y', ya, '--tier', 'sound')
        print('     bfloat16 accumulator, K = 1024, declared float32: probabilistic FAIL, '
              'sound %s' % ('PASS' if p.returncode == 0 else 'FAIL'))



if __name__ == '__main__':
    sys.exit(main())
