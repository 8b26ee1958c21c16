"""What the CLI tests share: running tapegrad with a timeout, the one-line-error check, and a
test registry that reports every failure before exiting non-zero.

    import cli_harness as h
    h.setup(sys.argv[1])                    # the tapegrad binary
    @h.test
    def something(): ...
    sys.exit(h.finish())
"""
import os
import subprocess
import sys
import traceback

BIN = None
TIMEOUT = 300     # seconds per command; a hang is a failure, not a stuck test
failures = []


def setup(binary):
    global BIN
    BIN = os.path.abspath(binary)


def run(*args, timeout=TIMEOUT, env=None):
    """Runs tapegrad; returns the CompletedProcess (text mode)."""
    try:
        return subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise AssertionError('hang: %r did not finish within %d s' % (args, timeout))


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
    """Runs fn now; prints ok/FAIL with the traceback and records failures."""
    name = fn.__name__
    try:
        fn()
        print('ok   ' + name, flush=True)
    except Exception:  # noqa: BLE001 - report every failing test, then exit non-zero
        print('FAIL ' + name)
        traceback.print_exc(file=sys.stdout)
        failures.append(name)
    return fn


def finish():
    """The exit code: 0 when every test passed."""
    if failures:
        print('%d failed: %s' % (len(failures), ', '.join(failures)))
        return 1
    print('all passed')
    return 0
