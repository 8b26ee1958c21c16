#!/usr/bin/python3
"""The bad-input matrix: hostile inputs through the tapegrad CLI, one class at a time.

Every bad input must give exactly one stderr line 'tapegrad: error: ...' (printable, valid UTF-8,
nothing Python's splitlines() would split), exit code 2, within a timeout, and leave nothing
behind in the output directory. The classes (issue 14):
  hang         FIFOs, devices and directories given as inputs (--x, compare, --model)
  memory       sparse and real big .npy files, huge shapes, batches and specs: refused up front
               with the estimate and the argument behind it; the estimates bound the peak
               memory measured on commands that run
  one line     newlines, control characters, invalid UTF-8 and NUL in paths, op names, .npy
               header keys and dtypes, spec lines
  bad values   strict numbers and ranges for every option; NumPy's .npy limits
  unclear      unknown and missing commands, empty paths, overflowing sizes naming the option
  --version    what a bug report needs
  compare      the NaN / Inf / empty policy and its options

Usage: cli_bad_input_test.py TAPEGRAD_BINARY PEAK_MEMORY_BINARY   (ctest, label `cli`)
"""
import os
import re
import resource
import subprocess
import sys
import tempfile
import traceback

import numpy as np

BIN = None
PEAK = None        # tests/peak_memory.cpp: measures a command's peak resident memory
TMP = None
SANITIZED = False  # an ASan/TSan build: memory use is not comparable with the estimates
TIMEOUT = 60       # seconds per command; a hang is a failure, not a stuck test
failures = []


def run_raw(args, timeout=TIMEOUT):
    """Runs tapegrad with byte arguments; returns (returncode, stdout, stderr) as bytes."""
    try:
        p = subprocess.run([BIN] + args, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError('hang: %r did not finish within %d s' % (args, timeout))
    return p.returncode, p.stdout, p.stderr


def arg(a):
    return a if isinstance(a, bytes) else str(a).encode()


def run(*args, timeout=TIMEOUT):
    return run_raw([arg(a) for a in args], timeout)


def path(name):
    return os.path.join(TMP, name)


def save(name, arr):
    np.save(path(name), arr)
    return path(name)


def write_bytes(name, data):
    with open(path(name), 'wb') as f:
        f.write(data)
    return path(name)


def npy_bytes(dict_text, payload=b'', major=1):
    """A .npy file by hand: magic, version, header length, the header padded to end in '\\n'."""
    header = dict_text if isinstance(dict_text, bytes) else dict_text.encode('latin1')
    prefix = 10 if major == 1 else 12
    header += b' ' * ((64 - (prefix + len(header) + 1) % 64) % 64) + b'\n'
    size = len(header).to_bytes(2 if major == 1 else 4, 'little')
    return b'\x93NUMPY' + bytes([major, 0]) + size + header + payload


UNSAFE = re.compile('[\x00-\x1f\x7f\x85\u2028\u2029\u202a-\u202e\u2066-\u2069]')


def check_one_line(stderr):
    text = stderr.decode('utf-8')  # raises on invalid UTF-8
    assert text.endswith('\n'), 'stderr does not end in a newline: %r' % text
    body = text[:-1]
    assert not UNSAFE.search(body), 'stderr has a control or line-breaking character: %r' % text
    assert len(text.splitlines()) == 1, 'not one line: %r' % text
    assert body.startswith('tapegrad: error: '), body
    assert 'bad_alloc' not in body, body
    return body


def expect_bad(result, *fragments, out_dir=None):
    """Exit 2, one clean stderr line containing every fragment, nothing written to out_dir."""
    rc, _, err = result
    assert rc == 2, 'exit %d, expected 2; stderr: %r' % (rc, err)
    line = check_one_line(err)
    for f in fragments:
        assert f in line, '%r not in %r' % (f, line)
    if out_dir is not None:
        assert not os.path.exists(out_dir) or os.listdir(out_dir) == [], \
            'bad input left files in %s: %s' % (out_dir, os.listdir(out_dir))
    return line


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


def estimate_bytes(*args):
    """The command's memory estimate, read from its refusal under --max-memory 1."""
    line = expect_bad(run(*args, '--max-memory', '1'), 'needs an estimated')
    m = re.search(r'needs an estimated ([0-9.]+) (B|KiB|MiB|GiB|TiB)', line)
    assert m, line
    scale = {'B': 1, 'KiB': 2 ** 10, 'MiB': 2 ** 20, 'GiB': 2 ** 30, 'TiB': 2 ** 40}[m.group(2)]
    return float(m.group(1)) * scale


def peak_bytes(*args):
    """Runs a command that must succeed (exit 0 or 1) and returns its peak resident memory,
    measured by the peak_memory launcher (not from Python: see peak_memory.cpp)."""
    p = subprocess.run([PEAK, BIN] + [str(a) for a in args], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=600)
    assert p.returncode in (0, 1), (args, p.stderr)
    last = p.stderr.decode().strip().splitlines()[-1]
    assert last.startswith('peak_memory_bytes '), p.stderr
    return int(last.split()[1])


def main():
    global BIN, PEAK, TMP, SANITIZED
    BIN = os.path.abspath(sys.argv[1])
    PEAK = os.path.abspath(sys.argv[2])
    with tempfile.TemporaryDirectory(prefix='tapegrad_bad_input_') as TMP:
        rng = np.random.default_rng(3)
        x = save('x.npy', rng.standard_normal((2, 3, 6, 6)))
        w = save('w.npy', rng.standard_normal((4, 3, 3, 3)))
        spec = path('net.txt')
        with open(spec, 'w') as fh:
            fh.write('input 1 3 3\nconv2d out=1 kernel=3\nflatten\nlinear out=1\nloss mse\n')
        fifo = path('fifo.npy')
        os.mkfifo(fifo)
        out = path('out')

        # ------------------------------------------------------------ --version
        @test
        def version_names_compiler_isa_and_libraries():
            rc, so, se = run('--version')
            assert rc == 0 and se == b'', (rc, se)
            text = so.decode()
            assert re.match(r'tapegrad \d+\.\d+\.\d+\n', text), text
            for frag in ('compiler', 'GCC', 'fast kernels', 'OpenMP', 'Boost', 'CLI11',
                         'nlohmann/json', 'zlib'):
                if frag == 'GCC' and 'clang' in text:
                    continue
                assert frag in text, (frag, text)
            assert re.search(r'fast kernels  (avx512|avx2|generic) ', text), text
            global SANITIZED
            SANITIZED = 'Sanitizer' in text

        # ------------------------------------------------------------ hang
        @test
        def fifo_device_and_directory_as_inputs_are_refused_at_once():
            # Each would block forever (a FIFO with no writer), never end (/dev/zero) or be
            # misread (a directory) if the file were read before its type was checked.
            for bad, kind in ((fifo, 'is a FIFO'), ('/dev/zero', 'is a character device'),
                              (TMP, 'is a directory')):
                expect_bad(run('ref', 'relu', '--x', bad, '--out', out, timeout=20),
                           '--x', kind, out_dir=out)
                expect_bad(run('ref', 'conv2d', '--x', x, '--w', bad, '--out', out, timeout=20),
                           '--w', kind, out_dir=out)
                expect_bad(run('compare', bad, x, timeout=20), 'ACTUAL', kind)
                expect_bad(run('compare', x, bad, timeout=20), 'EXPECTED', kind)
                expect_bad(run('check', '--model', bad, timeout=20), '--model', kind)

        # ------------------------------------------------------------ memory
        @test
        def sparse_100_gb_npy_is_refused_from_its_header():
            hdr = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (12500000000,), }")
            p = write_bytes('sparse.npy', hdr)
            try:
                os.truncate(p, len(hdr) + 100 * 10 ** 9)
            except OSError as e:
                print('  (skipped: no sparse 100 GB file here: %s)' % e)
                return
            expect_bad(run('ref', 'relu', '--x', p, '--out', out, timeout=20),
                       'ref relu: needs an estimated', "from --x '%s'" % p, out_dir=out)
            expect_bad(run('compare', p, p, timeout=20), 'compare: needs an estimated', 'ACTUAL')

        @test
        def valid_npy_over_the_limit_is_refused_naming_the_file():
            big = save('big.npy', np.zeros(1 << 22))  # 32 MiB of float64
            line = expect_bad(run('ref', 'relu', '--x', big, '--out', out, '--max-memory', '64M'),
                              'needs an estimated', "from --x '%s'" % big,
                              "--max-memory '64M'", out_dir=out)
            assert 'in 50 digits' in line, line
            # The global option also works before the command.
            expect_bad(run('--max-memory', '64M', 'ref', 'relu', '--x', big, '--out', out),
                       'needs an estimated', out_dir=out)
            expect_bad(run('compare', big, big, '--max-memory', '64M'), 'compare: needs',
                       "ACTUAL '%s'" % big)

        @test
        def huge_shapes_batches_and_specs_are_refused_naming_the_argument():
            expect_bad(run('check', '--model', 'seed', '--batch', '1000000000'),
                       'check: needs an estimated', "--batch '1000000000'")
            for name, text in (
                    ('wide.txt', 'input 1 3 3\nflatten\nlinear out=2000000000\nloss mse\n'),
                    ('tall.txt', 'input 1 30000 30000\nflatten\nlinear out=1\nloss mse\n')):
                p = path(name)
                with open(p, 'w') as fh:
                    fh.write(text)
                line = expect_bad(run('check', '--model', p), 'check: needs an estimated')
                assert re.search("from --model '%s' (line [0-9]|\\(its input line)" %
                                 re.escape(p), line), line
            expect_bad(run('bench', 'conv2d', '--shape', '64,512,1024,1024,512,3,3,1,1'),
                       'bench conv2d: needs an estimated', '--shape')
            expect_bad(run('ref', 'conv2d', '--x', x, '--w', w, '--pad', '40000', '--out', out),
                       'ref conv2d: needs an estimated', "--pad '40000'", out_dir=out)

        @test
        def estimates_bound_the_memory_measured():
            # Each estimate must be at least the peak resident memory the command reaches, and
            # not absurdly pessimistic (within 4x). Sanitizers change the memory use: skipped.
            if SANITIZED:
                print('  (skipped under a sanitizer)')
                return
            mid = save('mid.npy', rng.standard_normal(1 << 19).astype(np.float32))
            cases = [
                ('ref', 'relu', '--x', mid, '--dy', mid, '--out', path('est1')),
                ('ref', 'conv2d', '--x', x, '--w', w, '--pad', '30', '--dy',
                 save('dyp.npy', np.ones((2, 4, 64, 64))), '--out', path('est2')),
                ('compare', mid, mid),
                ('check', '--model', 'lenet5'),
                ('check', '--model', 'seed', '--batch', '3000'),
                ('bench', 'conv2d', '--shape', '16,64,56,56,64,3,3,1,1', '--repeat', '1'),
                ('bench', 'conv2d', '--shape', '16,64,28,28,64,3,3,1,1', '--repeat', '1',
                 '--dir', 'bwd_weights', '--dtype', 'double'),
            ]
            for c in cases:
                est = estimate_bytes(*c)
                peak = peak_bytes(*c)
                print('  %-60s estimate %7.1f MiB  peak %7.1f MiB' %
                      (' '.join(str(a) for a in c[:4])[:60], est / 2 ** 20, peak / 2 ** 20))
                assert peak <= est, 'estimate %.1f MiB is below the peak %.1f MiB: %r' % (
                    est / 2 ** 20, peak / 2 ** 20, c)
                assert est <= 4 * peak, 'estimate %.1f MiB is over 4x the peak %.1f MiB: %r' % (
                    est / 2 ** 20, peak / 2 ** 20, c)

        # ------------------------------------------------------------ one line
        @test
        def user_text_in_messages_is_escaped_to_one_line():
            for bad in (b'a\nb.npy', b'a\rb\x1b[2J.npy', b'\xff\xfe.npy', b'e\xe2\x80\xa8.npy',
                        b'tab\tand\x7f.npy'):
                expect_bad(run_raw([b'ref', b'relu', b'--x', bad, b'--out', arg(out)]), '--x',
                           out_dir=out)
                expect_bad(run_raw([b'compare', bad, arg(x)]), 'ACTUAL')
                expect_bad(run_raw([b'check', b'--model', bad]), '--model')
            expect_bad(run_raw([b'ref', b'conv\n3d', b'--x', arg(x), b'--out', arg(out)]),
                       "unknown op 'conv\\n3d'", out_dir=out)
            expect_bad(run_raw([b'ref', b'\xc3(', b'--x', arg(x), b'--out', arg(out)]),
                       "unknown op '\\xc3('", out_dir=out)
            expect_bad(run_raw([b'frob\nnicate']), "unknown command 'frob\\nnicate'")
            expect_bad(run_raw([b'ref', b'relu', b'--x', arg(x), b'--out', arg(out),
                                b'--unknown\noption']))
            # A file name with a newline that exists and is malformed.
            weird = write_bytes('we\nird.npy', b'not a npy file')
            expect_bad(run('ref', 'relu', '--x', weird, '--out', out), 'we\\nird.npy', 'magic',
                       out_dir=out)
            # .npy header keys and dtypes with NUL, control and non-UTF-8 bytes.
            for d in (b"{'descr': '<f8\x00\x1b\xff', 'fortran_order': False, 'shape': (1,), }",
                      b"{'descr': '<f8', 'fortran_order': False, 'sha\x00pe': (1,), }",
                      b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), '\xe2\x80\xa8': 1}",
                      b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,\r), }x\n\x85"):
                p = write_bytes('hdr.npy', npy_bytes(d, b'\0' * 8))
                expect_bad(run('ref', 'relu', '--x', p, '--out', out), '--x', out_dir=out)
            # Spec lines with control characters and non-UTF-8 bytes.
            for text in (b'input 1 3 3\nconv\x1b[31m2d out=1\nloss mse\n',
                         b'input 1 3 3\nflatten\nlinear out=\xff\nloss mse\n',
                         b'input 1 3 3\x00\nloss mse\n'):
                p = write_bytes('bad_spec.txt', text)
                expect_bad(run('check', '--model', p))

        # ------------------------------------------------------------ bad values
        @test
        def every_number_is_parsed_strictly_and_range_checked():
            cases = [
                (('check', '--model', 'seed', '--seed', '-1'), '--seed'),
                (('check', '--model', 'seed', '--seed', '18446744073709551616'), '--seed'),
                (('check', '--model', 'seed', '--seed', '1e3'), '--seed'),
                (('check', '--model', 'seed', '--batch', '0'), '--batch'),
                (('check', '--model', 'seed', '--batch', '-2'), '--batch'),
                (('check', '--model', 'seed', '--batch', '9223372036854775808'), '--batch'),
                (('check', '--model', 'seed', '--batch', '2 '), '--batch'),
                (('check', '--model', 'seed', '--fd-max', '0'), '--fd-max'),
                (('compare', x, x, '--max-ulps', '-1'), '--max-ulps'),
                (('compare', x, x, '--max-ulps', '99999999999999999999'), '--max-ulps'),
                (('compare', x, x, '--rtol', 'nan'), '--rtol'),
                (('compare', x, x, '--rtol', '-1e-3'), '--rtol'),
                (('compare', x, x, '--atol', 'inf'), '--atol'),
                (('compare', x, x, '--atol', '1e999'), '--atol'),
                (('compare', x, x, '--atol', '0x1p-3'), '--atol'),
                (('bench', 'conv2d', '--shape', '1,1,3,3,1,1,1,1,0,'), '--shape'),
                (('bench', 'conv2d', '--shape', '1,1,3,3,1,1,1,1'), '--shape'),
                (('bench', 'conv2d', '--shape', '1,1,3,3,1,1,1,1,0,0'), '--shape'),
                (('bench', 'conv2d', '--shape', '1,1,3,3,1,1,1,0,0'), 'stride'),
                (('bench', 'conv2d', '--shape', '1,1,3,3,1,1,1,1,-1'), '--shape'),
                (('bench', 'conv2d', '--shape', '1,1,3,3,1,1,1,1,0', '--threads', '0'),
                 '--threads'),
                (('bench', 'conv2d', '--shape', '1,1,3,3,1,1,1,1,0', '--threads', '-1'),
                 '--threads'),
                (('bench', 'conv2d', '--shape', '1,1,3,3,1,1,1,1,0', '--repeat', '0'),
                 '--repeat'),
                (('bench', 'conv2d', '--shape', '1,1,3,3,1,1,1,1,0', '--repeat',
                  '99999999999'), '--repeat'),
                (('ref', 'conv2d', '--x', x, '--w', w, '--pad', '1,', '--out', out), '--pad'),
                (('ref', 'conv2d', '--x', x, '--w', w, '--pad', '-1', '--out', out), '--pad'),
                (('ref', 'conv2d', '--x', x, '--w', w, '--stride', '0', '--out', out),
                 '--stride'),
                (('ref', 'conv2d', '--x', x, '--w', w, '--groups', '0', '--out', out),
                 '--groups'),
                (('ref', 'conv2d', '--x', x, '--w', w, '--dilation', '1,2,3', '--out', out),
                 '--dilation'),
                (('ref', 'max_pool2d', '--x', x, '--kernel', '2,x', '--out', out), '--kernel'),
                (('ref', 'relu', '--x', x, '--out', out, '--max-memory', '0'), '--max-memory'),
                (('ref', 'relu', '--x', x, '--out', out, '--max-memory', '-1G'), '--max-memory'),
                (('ref', 'relu', '--x', x, '--out', out, '--max-memory', '4Q'), '--max-memory'),
                (('ref', 'relu', '--x', x, '--out', out, '--max-memory', '99999999999T'),
                 '--max-memory'),
            ]
            for args, option in cases:
                expect_bad(run(*args), option, out_dir=out)

        @test
        def npy_files_numpy_rejects_are_rejected():
            def with_shape(shape, payload=b''):
                return npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % shape,
                                 payload)
            for name, data, frag in (
                    ('d33.npy', with_shape('(' + '1, ' * 33 + ')', b'\0' * 8), 'NPY_MAXDIMS'),
                    ('d65.npy', with_shape('(' + '1, ' * 65 + ')', b'\0' * 8), 'NPY_MAXDIMS'),
                    ('d10000.npy', npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': ("
                                             + '1, ' * 10000 + '), }', b'\0' * 8, 2),
                     'NPY_MAXDIMS'),
                    ('zero_huge.npy', with_shape('(0, 9223372036854775807)'), 'too big'),
                    ('lead0.npy', with_shape('(2,03, 4)', b'\0' * 192), 'leading zeros'),
                    ('neg.npy', with_shape('(-1, 2)'), 'negative'),
                    ('big_dim.npy', with_shape('(99999999999999999999,)'), '64 bits')):
                p = write_bytes(name, data)
                expect_bad(run('ref', 'relu', '--x', p, '--out', out), '--x', frag, out_dir=out)
                # NumPy agrees that these are not loadable arrays.
                try:
                    np.load(p)
                    loaded = True
                except Exception:  # noqa: BLE001 - any refusal will do
                    loaded = False
                assert not loaded or name == 'neg.npy', 'NumPy loads %s' % name
            # The limit itself is fine, and what tapegrad writes from it NumPy can load.
            x32 = save('x32.npy', np.ones((1,) * 30 + (2, 3)))
            rc, _, err = run('ref', 'relu', '--x', x32, '--out', path('o32'))
            assert rc == 0, err
            assert np.load(path('o32/y.npy')).shape == (1,) * 30 + (2, 3)

        @test
        def version2_header_longer_than_64_kib_reads_correctly():
            a = rng.standard_normal((3, 4))
            dict_text = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }"
            p = write_bytes('long_hdr.npy', npy_bytes(dict_text + ' ' * 70000, a.tobytes(), 2))
            # NumPy reads it too, once told that a header this long is fine (by default it
            # refuses headers over 10000 bytes as a safety measure).
            assert np.array_equal(np.load(p, max_header_size=200000), a)
            rc, _, err = run('ref', 'relu', '--x', p, '--out', path('olong'))
            assert rc == 0, err
            assert np.array_equal(np.load(path('olong/y.npy')), np.maximum(a, 0))

        # ------------------------------------------------------------ unclear
        @test
        def unknown_or_missing_commands_and_empty_paths_are_named():
            expect_bad(run('frobnicate'), "unknown command 'frobnicate'", 'ref, compare')
            expect_bad(run(), 'no command given', 'ref, compare')
            expect_bad(run('--max-memory', '4G'), 'no command given')
            expect_bad(run('ref', 'relu', '--x', '', '--out', out), '--x: the path is empty',
                       out_dir=out)
            expect_bad(run('ref', 'conv2d', '--x', x, '--w', '', '--out', out),
                       '--w: the path is empty', out_dir=out)
            expect_bad(run('ref', 'relu', '--x', x, '--out', ''), '--out: the path is empty')
            expect_bad(run('compare', '', x), 'ACTUAL: the path is empty')
            expect_bad(run('compare', x, ''), 'EXPECTED: the path is empty')
            expect_bad(run('check', '--model', ''), '--model: the path is empty')
            expect_bad(run('check', '--model', TMP), '--model', 'is a directory')
            expect_bad(run('check', '--model', path('missing.txt')), '--model', 'missing.txt',
                       'No such file')

        @test
        def overflowing_sizes_name_the_option():
            expect_bad(run('ref', 'conv2d', '--x', x, '--w', w, '--pad',
                           '1200000000000,100000000000', '--out', out),
                       "--pad '1200000000000,100000000000'", 'overflows', out_dir=out)
            expect_bad(run('ref', 'conv2d', '--x', x, '--w', w, '--pad', '999999999999999999',
                           '--out', out), '--pad', out_dir=out)
            expect_bad(run('ref', 'max_pool2d', '--x', x, '--kernel', '281474976710657',
                           '--out', out), '--kernel', out_dir=out)
            expect_bad(run('bench', 'conv2d', '--shape', '100000,100000,100000,100,1,1,1,1,0'),
                       '--shape')

        # ------------------------------------------------------------ compare policy
        @test
        def compare_nan_inf_and_empty_policy():
            e = np.array([1.0, np.nan, np.inf, -np.inf])
            pe = save('nan_e.npy', e)
            rc, so, _ = run('compare', pe, pe)
            assert rc == 1 and b'1 NaN against NaN (failing; --nan-equal accepts them)' in so \
                and b'2 equal infinities (passing)' in so, so
            rc, so, _ = run('compare', pe, pe, '--nan-equal')
            assert rc == 0 and so.rstrip().endswith(b'PASS'), so
            flipped = save('inf_flip.npy', np.array([1.0, np.nan, -np.inf, -np.inf]))
            rc, so, _ = run('compare', flipped, pe, '--nan-equal', '--atol', '1e300')
            assert rc == 1 and b'NaN/Inf mismatch 1' in so, so
            empty = save('empty.npy', np.zeros((0, 3)))
            rc, so, _ = run('compare', empty, empty)
            assert rc == 1 and b'nothing compared: both arrays are empty' in so, so
            rc, so, _ = run('compare', empty, empty, '--allow-empty')
            assert rc == 0 and so.rstrip().endswith(b'PASS'), so

    if failures:
        print('%d test(s) failed: %s' % (len(failures), ', '.join(failures)))
        return 1
    print('all bad-input tests passed')
    return 0


if __name__ == '__main__':
    # Core dumps of a crash would be noise here; the exit status tells.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
