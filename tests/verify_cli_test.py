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
            expect_bad_input(run('verify', *la[:3], '--y', t), 'expected float32 or float64')

        @test
        def nan_in_mine_is_a_failure_not_bad_input():
            la, lm = cases['log_softmax']
            a = np.load(lm['--y'])
            a[2, 3] = np.nan
            p = run('verify', *la[:3], '--y', save('nan_y', a))
            assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
            assert 'element y[2,3] is NaN' in p.stdout, p.stdout

    return h.finish()


if __name__ == '__main__':
    sys.exit(main())
