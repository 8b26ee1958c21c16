#!/usr/bin/python3
"""End-to-end tests of `tapegrad ref` and `tapegrad compare`: exit codes, one-line errors, and
nothing written on bad input.

Usage: cli_test.py TAPEGRAD_BINARY      (run by ctest with label `cli`)
"""
import os
import subprocess
import sys
import tempfile
import traceback

import numpy as np

BIN = None
TMP = None
failures = []


def run(*args):
    return subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True)


def path(name):
    return os.path.join(TMP, name)


def save(name, arr):
    np.save(path(name), arr)
    return path(name)


def write_bytes(name, data):
    with open(path(name), 'wb') as f:
        f.write(data)
    return path(name)


def expect_bad_input(proc, fragment, out_dir=None):
    """Exit 2, exactly one stderr line 'tapegrad: error: ...' containing fragment, and (when
    out_dir is given) nothing created there."""
    assert proc.returncode == 2, 'exit %d, expected 2; stderr: %r' % (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, 'expected one stderr line, got %r' % proc.stderr
    assert lines[0].startswith('tapegrad: error: '), lines[0]
    assert fragment in lines[0], '%r not in %r' % (fragment, lines[0])
    if out_dir is not None:
        assert not os.path.exists(out_dir) or os.listdir(out_dir) == [], \
            'bad input left files in %s: %s' % (out_dir, os.listdir(out_dir))


def test(fn):
    name = fn.__name__
    try:
        fn()
        print('ok   ' + name)
    except Exception:  # noqa: BLE001 - report every failing test, then exit non-zero
        print('FAIL ' + name)
        traceback.print_exc(file=sys.stdout)
        failures.append(name)
    return fn


def inputs():
    rng = np.random.default_rng(7)
    return {
        'x': save('x.npy', rng.standard_normal((2, 3, 6, 6))),
        'w': save('w.npy', rng.standard_normal((4, 3, 3, 3))),
        'b': save('b.npy', rng.standard_normal(4)),
        'dy': save('dy.npy', rng.standard_normal((2, 4, 6, 6))),
    }


def main():
    global BIN, TMP
    BIN = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix='tapegrad_cli_test_') as TMP:
        f = inputs()

        @test
        def ref_conv2d_writes_all_outputs_and_no_temporaries():
            out = path('ok')
            p = run('ref', 'conv2d', '--x', f['x'], '--w', f['w'], '--b', f['b'], '--dy', f['dy'],
                    '--pad', '1', '--out', out)
            assert p.returncode == 0, p.stderr
            assert sorted(os.listdir(out)) == ['db.npy', 'dw.npy', 'dx.npy', 'y.npy'], os.listdir(out)
            assert np.load(os.path.join(out, 'y.npy')).shape == (2, 4, 6, 6)
            assert np.load(os.path.join(out, 'dw.npy')).shape == (4, 3, 3, 3)
            assert 'pad=(1,1)' in p.stdout

        @test
        def ref_creates_nested_out_dir():
            out = path('a/b/c')
            p = run('ref', 'relu', '--x', f['x'], '--out', out)
            assert p.returncode == 0, p.stderr
            assert os.listdir(out) == ['y.npy']

        @test
        def ref_unknown_op_is_exit_2():
            expect_bad_input(run('ref', 'conv3d', '--x', f['x'], '--out', path('o1')),
                             "unknown op 'conv3d'", path('o1'))

        @test
        def ref_missing_required_input_is_exit_2():
            expect_bad_input(run('ref', 'conv2d', '--x', f['x'], '--out', path('o2')),
                             '--w is required', path('o2'))
            expect_bad_input(run('ref', 'max_pool2d', '--x', f['x'], '--out', path('o2')),
                             '--kernel is required', path('o2'))
            expect_bad_input(run('ref', 'relu', '--out', path('o2')), '--x', path('o2'))

        @test
        def ref_option_the_op_does_not_take_is_exit_2():
            expect_bad_input(run('ref', 'relu', '--x', f['x'], '--kernel', '2', '--out', path('o3')),
                             'does not take --kernel', path('o3'))
            expect_bad_input(run('ref', 'max_pool2d', '--x', f['x'], '--kernel', '2', '--groups', '2',
                                 '--out', path('o3')), 'does not take --groups', path('o3'))
            expect_bad_input(run('ref', 'linear', '--x', f['x'], '--w', f['w'], '--stride', '2',
                                 '--out', path('o3')), 'does not take --stride', path('o3'))

        @test
        def ref_shape_mismatch_names_the_shapes():
            w5 = save('w5.npy', np.ones((4, 5, 3, 3)))
            expect_bad_input(run('ref', 'conv2d', '--x', f['x'], '--w', w5, '--out', path('o4')),
                             'w in-channels is 5, expected 3', path('o4'))
            b5 = save('b5.npy', np.ones(5))
            expect_bad_input(run('ref', 'conv2d', '--x', f['x'], '--w', f['w'], '--b', b5,
                                 '--out', path('o4')), 'b has shape [5], expected [4]', path('o4'))

        @test
        def ref_dy_of_wrong_shape_writes_nothing():
            dy = save('dy_bad.npy', np.ones((2, 4, 5, 5)))
            expect_bad_input(run('ref', 'conv2d', '--x', f['x'], '--w', f['w'], '--dy', dy,
                                 '--pad', '1', '--out', path('o5')),
                             'dy has shape [2,4,5,5], expected [2,4,6,6]', path('o5'))

        @test
        def ref_loss_dy_must_be_0d():
            x = save('l.npy', np.ones((2, 3)))
            t = save('t.npy', np.array([0, 2], dtype=np.int64))
            dy = save('dy1.npy', np.ones(1))
            expect_bad_input(run('ref', 'cross_entropy', '--x', x, '--target', t, '--dy', dy,
                                 '--out', path('o6')), 'dy has shape [1], expected []', path('o6'))
            ok = run('ref', 'cross_entropy', '--x', x, '--target', t,
                     '--dy', save('dy0.npy', np.array(2.0)), '--out', path('o6ok'))
            assert ok.returncode == 0, ok.stderr
            # equal logits: loss = log 3, dloss/dx = dy/N * (1/3 - onehot)
            y = np.load(path('o6ok/y.npy'))
            assert y.shape == () and abs(y - np.log(3)) <= 4e-16, y
            dx = np.load(path('o6ok/dx.npy'))
            assert abs(dx[0, 0] - (1 / 3 - 1)) <= 4e-16 and abs(dx[1, 0] - 1 / 3) <= 4e-16, dx

        @test
        def ref_target_out_of_range_is_exit_2():
            x = save('l2.npy', np.ones((2, 3)))
            t = save('t2.npy', np.array([0, 3], dtype=np.int64))
            expect_bad_input(run('ref', 'cross_entropy', '--x', x, '--target', t, '--out', path('o7')),
                             'targets[1] is 3', path('o7'))

        @test
        def ref_wrong_dtype_is_exit_2():
            xi = save('xi.npy', np.ones((2, 3), dtype=np.int64))
            expect_bad_input(run('ref', 'relu', '--x', xi, '--out', path('o8')), 'int64', path('o8'))
            # float16 is read now (verify_cli_test.py); complex and big-endian halves are not
            xc = save('xc.npy', np.ones((2, 3), dtype=np.complex64))
            expect_bad_input(run('ref', 'relu', '--x', xc, '--out', path('o8')),
                             "unsupported dtype '<c8'", path('o8'))
            xb = save('xb16.npy', np.ones((2, 3), dtype='>f2'))
            expect_bad_input(run('ref', 'relu', '--x', xb, '--out', path('o8')),
                             "unsupported dtype '>f2' (big-endian)", path('o8'))
            xu = save('xu16.npy', np.ones((2, 3), dtype=np.uint16))
            expect_bad_input(run('ref', 'relu', '--x', xu, '--out', path('o8')),
                             "pass --dtype bfloat16", path('o8'))
            tf = save('tf.npy', np.zeros(2))
            expect_bad_input(run('ref', 'cross_entropy', '--x', save('l3.npy', np.ones((2, 3))),
                                 '--target', tf, '--out', path('o8')), 'expected int64', path('o8'))

        @test
        def ref_big_endian_and_fortran_are_exit_2():
            xb = save('xb.npy', np.ones((2, 3), dtype='>f8'))
            expect_bad_input(run('ref', 'relu', '--x', xb, '--out', path('o9')), 'big-endian', path('o9'))
            xf = save('xf.npy', np.asfortranarray(np.ones((2, 3))))
            expect_bad_input(run('ref', 'relu', '--x', xf, '--out', path('o9')), 'Fortran', path('o9'))

        @test
        def ref_nan_names_file_and_index():
            x = np.ones((2, 3))
            x[1, 2] = np.nan
            xn = save('xn.npy', x)
            expect_bad_input(run('ref', 'relu', '--x', xn, '--out', path('o10')),
                             "'" + xn + "': element [1,2] is nan", path('o10'))
            x[1, 2] = -np.inf
            expect_bad_input(run('ref', 'relu', '--x', save('xinf.npy', x), '--out', path('o10')),
                             'is -inf', path('o10'))

        @test
        def ref_malformed_npy_is_exit_2():
            good = open(f['x'], 'rb').read()
            cases = {
                'trunc.npy': (good[:-3], 'truncated'),
                'garbage.npy': (good + b'xx', 'bytes after the data'),
                'magic.npy': (b'hello world', 'magic'),
                'hdr.npy': (good[:8] + b'\xff\xff' + good[10:60], 'past the end'),
            }
            for name, (data, frag) in cases.items():
                expect_bad_input(run('ref', 'relu', '--x', write_bytes(name, data), '--out', path('o11')),
                                 frag, path('o11'))
            expect_bad_input(run('ref', 'relu', '--x', path('nonexistent.npy'), '--out', path('o11')),
                             'nonexistent.npy', path('o11'))

        @test
        def ref_absurd_shape_is_exit_2_without_allocating():
            hdr = b"{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"
            hdr += b' ' * ((64 - (10 + len(hdr) + 1) % 64) % 64) + b'\n'
            data = b'\x93NUMPY\x01\x00' + len(hdr).to_bytes(2, 'little') + hdr
            expect_bad_input(run('ref', 'relu', '--x', write_bytes('huge.npy', data), '--out', path('o12')),
                             'overflow', path('o12'))

        @test
        def ref_bad_option_values_are_exit_2():
            expect_bad_input(run('ref', 'conv2d', '--x', f['x'], '--w', f['w'], '--stride', '0',
                                 '--out', path('o13')), '--stride: expected N or H,W with integers in [1,', path('o13'))
            expect_bad_input(run('ref', 'conv2d', '--x', f['x'], '--w', f['w'], '--pad', '1,x',
                                 '--out', path('o13')), '--pad', path('o13'))
            expect_bad_input(run('ref', 'relu', '--x', f['x'], '--out-dtype', 'float8',
                                 '--out', path('o13')), '--out-dtype', path('o13'))

        @test
        def ref_failure_leaves_existing_outputs_untouched():
            out = path('keep')
            os.makedirs(out)
            with open(os.path.join(out, 'y.npy'), 'w') as fh:
                fh.write('old')
            dy = save('dy_bad2.npy', np.ones(3))
            expect_bad_input(run('ref', 'relu', '--x', f['x'], '--dy', dy, '--out', out), 'dy has shape')
            assert os.listdir(out) == ['y.npy'] and open(os.path.join(out, 'y.npy')).read() == 'old'

        @test
        def ref_out_that_is_a_file_is_exit_2():
            fpath = write_bytes('afile', b'x')
            expect_bad_input(run('ref', 'relu', '--x', f['x'], '--out', fpath), 'not a directory')

        @test
        def ref_pool_stride_defaults_to_kernel():
            p = run('ref', 'max_pool2d', '--x', f['x'], '--kernel', '3', '--out', path('pool'))
            assert p.returncode == 0, p.stderr
            assert np.load(path('pool/y.npy')).shape == (2, 3, 2, 2)  # 6/3 = 2 per axis

        @test
        def ref_float32_output_is_rounded_once_from_f50():
            # linear: y = x . w with x = [1, 1, 1], w = [1, 2^-24, 2^-60]: y = 1 + 2^-24 + 2^-60
            # exactly (in f50). That is just above the midpoint of floats 1 and 1 + 2^-23, so
            # float32 output is 1 + 2^-23. Through float64 it would become 1 + 2^-24 first (2^-60
            # is below half a double ulp), an exact tie that rounds to even: 1.
            x = save('x1.npy', np.ones((1, 3)))
            w = save('w1.npy', np.array([[1.0, 2.0 ** -24, 2.0 ** -60]]))
            p = run('ref', 'linear', '--x', x, '--w', w, '--out', path('o32'), '--out-dtype', 'float32')
            assert p.returncode == 0, p.stderr
            y = np.load(path('o32/y.npy'))
            assert y.dtype == np.float32 and y[0, 0] == np.float32(1 + 2.0 ** -23), (y.dtype, y)
            p = run('ref', 'linear', '--x', x, '--w', w, '--out', path('o64'))
            y64 = np.load(path('o64/y.npy'))
            assert y64.dtype == np.float64 and y64[0, 0] == 1 + 2.0 ** -24, y64

        # ---------------------------------------------------------------- compare
        e = np.linspace(-1, 2, 12).reshape(3, 4)
        exp = save('e.npy', e)

        @test
        def compare_identical_passes_exit_0():
            p = run('compare', exp, exp, '--max-ulps', '0')
            assert p.returncode == 0, p.stdout + p.stderr
            assert p.stdout.rstrip().endswith('PASS'), p.stdout

        @test
        def compare_one_ulp_fails_max_ulps_0_exit_1():
            a = e.copy()
            a[2, 1] = np.nextafter(a[2, 1], np.inf)
            act = save('a1.npy', a)
            p = run('compare', act, exp, '--max-ulps', '0')
            assert p.returncode == 1, p.stdout + p.stderr
            assert 'worst element    [2,1]' in p.stdout and 'FAIL' in p.stdout, p.stdout
            assert run('compare', act, exp, '--max-ulps', '1').returncode == 0
            assert run('compare', act, exp).returncode == 0  # default 8u tolerance accepts 1 ulp

        @test
        def compare_float32_counts_float32_ulps():
            e32 = e.astype(np.float32)
            a32 = e32.copy()
            a32[0, 0] = np.nextafter(np.nextafter(a32[0, 0], np.float32(9)), np.float32(9))
            p = run('compare', save('a32.npy', a32), save('e32.npy', e32), '--max-ulps', '1')
            assert p.returncode == 1 and 'max ULP error    2' in p.stdout, p.stdout
            assert 'ULPs of float32' in p.stdout

        @test
        def compare_nan_in_actual_always_fails():
            a = e.copy()
            a[0, 3] = np.nan
            p = run('compare', save('anan.npy', a), exp, '--atol', '1e300')
            assert p.returncode == 1 and 'NaN/Inf mismatch 1' in p.stdout, p.stdout

        @test
        def compare_shape_or_dtype_mismatch_is_exit_2():
            expect_bad_input(run('compare', save('s.npy', np.zeros((4, 3))), exp), 'shape [4,3]')
            expect_bad_input(run('compare', save('d32.npy', e.astype(np.float32)), exp), 'dtype')
            expect_bad_input(run('compare', path('missing.npy'), exp), 'missing.npy')
            expect_bad_input(run('compare', exp, exp, '--rtol', '-1'), '--rtol')

        # ---------------------------------------------------------------- --engine exact|f50
        def engine_outputs(op, args, engine, out_dtype):
            out = path('eng_%s_%s_%s' % (op, engine, out_dtype))
            p = run('ref', op, *args, '--engine', engine, '--out-dtype', out_dtype, '--out', out)
            assert p.returncode == 0, p.stderr
            return out, p.stdout

        @test
        def ref_engines_write_the_same_bytes():
            # conv2d, linear and avg_pool2d (the exact engine's ops), float64 and float32 data and
            # outputs, with the hard values too: a midpoint plus a tiny term and subnormals.
            rng = np.random.default_rng(13)
            x = rng.standard_normal((2, 3, 7, 6))
            x[0, 0, 0, :3] = [1.0, 2.0 ** -53, 2.0 ** -300]
            x[1, 2] *= 2.0 ** -530
            xs = {'f64': save('ex64.npy', x), 'f32': save('ex32.npy', x.astype(np.float32))}
            w = save('ew.npy', rng.standard_normal((4, 3, 3, 2)))
            b = save('eb.npy', rng.standard_normal(4))
            dy = save('edy.npy', rng.standard_normal((2, 4, 4, 8)))
            lx = save('elx.npy', rng.standard_normal((5, 9)))
            lw = save('elw.npy', rng.standard_normal((3, 9)))
            ldy = save('eldy.npy', rng.standard_normal((5, 3)))
            pdy = save('epdy.npy', rng.standard_normal((2, 3, 4, 4)))
            for xname, xf in xs.items():
                cases = [('conv2d', ['--x', xf, '--w', w, '--b', b, '--dy', dy, '--pad', '1,2',
                                     '--stride', '2,1', '--dilation', '1,2']),
                         ('linear', ['--x', lx, '--w', lw, '--dy', ldy]),
                         ('avg_pool2d', ['--x', xf, '--kernel', '3,2', '--stride', '2', '--pad', '1',
                                         '--dy', pdy])]
                for op, args in cases:
                    for dt in ('float64', 'float32'):
                        ex, stdout = engine_outputs(op, args, 'exact', dt)
                        f5, _ = engine_outputs(op, args, 'f50', dt)
                        assert 'engine exact:' in stdout and 'fallback' in stdout, stdout
                        assert sorted(os.listdir(ex)) == sorted(os.listdir(f5))
                        for name in os.listdir(ex):
                            a = open(os.path.join(ex, name), 'rb').read()
                            assert a == open(os.path.join(f5, name), 'rb').read(), \
                                '%s %s %s %s differs between engines' % (op, xname, dt, name)

        @test
        def ref_engine_must_be_exact_or_f50():
            expect_bad_input(run('ref', 'conv2d', '--x', f['x'], '--w', f['w'], '--engine', 'fast',
                                 '--out', path('o_eng')), "--engine must be exact or f50, got 'fast'",
                             path('o_eng'))

    if failures:
        print('%d test(s) failed: %s' % (len(failures), ', '.join(failures)))
        return 1
    print('all CLI tests passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
