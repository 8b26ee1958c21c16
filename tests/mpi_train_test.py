#!/usr/bin/python3
"""Data-parallel training on MPI (`mpirun -np P tapegrad train`), end to end:

- the same bits as one process: the seed network and LeNet-5 on a slice of Fashion-MNIST, at
  1, 2 and 4 ranks with 1 and 2 threads each, end with bitwise the weights of one process
  without MPI, and the same metrics (every column but the wall-clock seconds);
- only rank 0 writes and prints;
- a configuration that differs between ranks (seed, instruction set), a setup error on one
  rank, or more ranks than shards: every rank ends, one 'tapegrad: error:' line, non-zero;
- a rank that exits early (rank 1, and rank 0) ends the whole job, non-zero, within a timeout;
- a checkpoint written by 2 ranks resumes on 4 ranks, on 1 rank and in one process without
  MPI, each ending with the uninterrupted run's weights.

The expected weights are never tapegrad-MPI's own output: they come from one process without
MPI, where no gather runs (the trainer sums its shards in shard order itself).

Usage: mpi_train_test.py TAPEGRAD_BINARY MPIEXEC   (ctest label `mpi`, registered when tapegrad
is built with TAPEGRAD_MPI). mpirun runs as root in CI, on one machine with fewer cores than
ranks: the environment below allows both.
"""
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

import cli_harness as h
from cli_harness import run, test

MPIEXEC = None
TIMEOUT = 180  # seconds per mpirun; a hang is a failure

ENV = dict(os.environ)
ENV.update({
    'OMPI_ALLOW_RUN_AS_ROOT': '1',               # CI runs as root
    'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM': '1',
    'OMPI_MCA_rmaps_base_oversubscribe': '1',    # 4 ranks on a 2-core machine
    'OMPI_MCA_btl_vader_single_copy_mechanism': 'none',  # containers may forbid ptrace (CMA)
})
ENV.pop('TAPEGRAD_TEST_EXIT_AT', None)

LENET = ['--model', 'lenet5', '--train-size', '192', '--test-size', '50', '--batch', '64',
         '--shards', '4', '--progress', 'none']
# 200 steps of the seed network (double): enough for a combination that sums in another order
# to show in the weights (planted: at 20 steps its 4-term double sums still rounded alike).
SEED = ['--model', 'seed', '--iterations', '200', '--shards', '4', '--progress', 'none']


def mpirun(np_args, *args, env=None, timeout=TIMEOUT):
    """mpirun -np N tapegrad ARGS (np_args: an int, or a list for MPMD: [(n, [args]), ...])."""
    cmd = [MPIEXEC, '--oversubscribe', '--bind-to', 'none']
    if isinstance(np_args, int):
        cmd += ['-np', str(np_args), h.BIN] + [str(a) for a in args]
    else:
        for i, (n, extra) in enumerate(np_args):
            if i:
                cmd.append(':')
            cmd += ['-np', str(n), h.BIN] + [str(a) for a in list(args) + list(extra)]
    e = dict(ENV)
    e.update(env or {})
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=e)
    except subprocess.TimeoutExpired:
        raise AssertionError('hang: %r did not finish within %d s' % (cmd, timeout))


def weights(out):
    z = np.load(os.path.join(out, 'weights.npz'))
    return {k: z[k] for k in z.files if k != 'meta.json'}


def assert_same_bits(a, b, what):
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb), (sorted(wa), sorted(wb))
    for k in wa:
        assert wa[k].dtype == wb[k].dtype and wa[k].shape == wb[k].shape, (what, k)
        if wa[k].tobytes() != wb[k].tobytes():
            d = np.abs(wa[k].astype(np.float64) - wb[k].astype(np.float64)).max()
            raise AssertionError('%s: %s differs from one process (max |diff| %g)' % (what, k, d))


def metrics_without_seconds(out):
    rows = list(csv.DictReader(open(os.path.join(out, 'metrics.csv'))))
    assert rows, out
    return [{k: v for k, v in r.items() if k != 'seconds'} for r in rows]


def one_error_line(proc, fragment):
    """mpirun failed; tapegrad printed exactly one error line (mpirun adds its own banner)."""
    assert proc.returncode != 0, 'exit 0; stderr %r' % proc.stderr
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.startswith('tapegrad: error: ')]
    assert len(lines) == 1, 'expected one tapegrad error line, got %r' % (proc.stderr + proc.stdout)
    assert fragment in lines[0], '%r not in %r' % (fragment, lines[0])
    return lines[0]


def main():
    global MPIEXEC
    h.setup(sys.argv[1])
    MPIEXEC = sys.argv[2]
    with tempfile.TemporaryDirectory(prefix='tapegrad_mpi_test_') as tmp:
        def p(*parts):
            return os.path.join(tmp, *parts)

        for name, args in [('seed', SEED), ('lenet5', LENET + ['--iterations', '3'])]:
            ref = p(name, 'one')
            r = run('train', *args, '--threads', '1', '--out', ref, env=ENV)
            assert r.returncode == 0, r.stderr

            def same_bits_at_1_2_4_ranks_and_1_2_threads(name=name, args=args, ref=ref):
                for ranks, threads in [(1, 1), (1, 2), (2, 1), (2, 2), (4, 1), (4, 2)]:
                    out = p(name, 'np%d_t%d' % (ranks, threads))
                    r = mpirun(ranks, 'train', *args, '--threads', threads, '--out', out)
                    what = '%s -np %d --threads %d' % (name, ranks, threads)
                    assert r.returncode == 0, (what, r.stderr)
                    assert_same_bits(ref, out, what)
                    # The loss and accuracy of every step are combined in shard order too.
                    assert metrics_without_seconds(out) == metrics_without_seconds(ref), what
                    # Rank 0 alone prints and writes (the same files as one process).
                    assert r.stdout.count('train: done') == 1, (what, r.stdout)
                    assert sorted(os.listdir(out)) == sorted(os.listdir(ref)), what
                    s = json.load(open(os.path.join(out, 'summary.json')))
                    assert s['configuration']['ranks'] == ranks, what
            same_bits_at_1_2_4_ranks_and_1_2_threads.__name__ = \
                name + '_same_bits_at_1_2_4_ranks_and_1_2_threads'
            test(same_bits_at_1_2_4_ranks_and_1_2_threads)

        @test
        def a_profiled_job_traces_every_rank_and_times_its_exchange():
            out = p('prof')
            r = mpirun(2, 'train', *LENET, '--iterations', '3', '--threads', '1', '--profile',
                       '--out', out)
            assert r.returncode == 0, r.stderr
            events = json.load(open(os.path.join(out, 'trace.json')))['traceEvents']
            assert {e['pid'] for e in events} == {0, 1}, 'one process per rank, pid = rank'
            names = {e['pid']: e['args']['name'] for e in events if e['name'] == 'process_name'}
            assert 'rank 0 of 2' in names[0] and 'rank 1 of 2' in names[1], names
            for pid in (0, 1):
                def count(name, cat=None):  # in training steps (rank 0 also evaluates)
                    return sum(1 for e in events if e['pid'] == pid and e['name'] == name and
                               e['ph'] == 'X' and (cat is None or e['cat'] == cat) and
                               e.get('args', {}).get('step', -1) > 0)
                assert count('step') == 3, (pid, count('step'))
                for part in ['wait', 'allgather', 'combine']:
                    assert count(part, 'combine') == 3, (pid, part, count(part, 'combine'))
                # Each rank runs its 2 of the 4 shards: 2 convolutions each, 3 steps (one
                # process would run 24).
                assert count('conv2d+relu', 'forward') == 12, (pid, count('conv2d+relu', 'forward'))
            parts = {q['name'] for q in json.load(open(os.path.join(out, 'profile.json')))['parts']}
            assert {'wait', 'allgather', 'combine'} <= parts, parts

        @test
        def ranks_that_disagree_end_together_with_one_line():
            base = LENET + ['--iterations', '2']
            out = p('mismatch')
            r = mpirun([(1, []), (1, ['--seed', '2'])], 'train', *base, '--out', out)
            one_error_line(r, "disagree on seed: rank 0 has '1', rank 1 has '2'")
            assert not os.path.exists(out), 'a refused job wrote %s' % os.listdir(out)
            # The fast kernels' instruction set (their sums' order depends on it).
            best = [ln for ln in run('--version').stdout.splitlines() if ln.startswith('fast kernels')]
            assert best, 'no instruction set in --version'
            if 'generic' not in best[0]:
                r = mpirun([(1, []), (1, ['--isa', 'generic'])], 'train', *base, '--out', out)
                line = one_error_line(r, "instruction set")
                assert "rank 1 has 'generic'" in line and '--isa' in line, line
            # A setup error on one rank only (its data is missing): named with the rank.
            r = mpirun([(2, []), (1, ['--data', 'fashion-mnist:' + p('nowhere')])], 'train', *base,
                       '--out', out)
            one_error_line(r, 'rank 2: --data')
            # The same error on every rank: said once.
            r = mpirun(3, 'train', *base, '--momentum', '2', '--out', out)
            line = one_error_line(r, '--momentum')
            assert 'rank' not in line, line
            # More ranks than shards.
            no_shards = [a for i, a in enumerate(base) if '--shards' not in base[max(i - 1, 0):i + 1]]
            r = mpirun(2, 'train', *no_shards, '--shards', '1', '--out', out)
            one_error_line(r, '2 ranks but --shards 1')
            assert not os.path.exists(out), 'a refused job wrote %s' % os.listdir(out)

        @test
        def a_rank_that_exits_early_ends_the_job():
            for rank in [1, 0]:
                out = p('early%d' % rank)
                r = mpirun(2, 'train', *LENET, '--iterations', '200', '--out', out,
                           env={'TAPEGRAD_TEST_EXIT_AT': '%d:2' % rank}, timeout=120)
                assert r.returncode != 0, 'rank %d exited early, yet the job ended 0' % rank
                assert not os.path.exists(os.path.join(out, 'weights.npz')), rank

        @test
        def a_checkpoint_of_2_ranks_resumes_on_any_ranks_and_without_mpi():
            # 3 steps per epoch (192 / 64): step 2 is mid-epoch, the resumed runs cross into
            # epoch 2 (a new shuffle) and the cosine schedule spans the same 5 steps.
            args = LENET + ['--iterations', '5']
            full = p('full')
            r = run('train', *args, '--out', full, env=ENV)
            assert r.returncode == 0, r.stderr
            r = mpirun(2, 'train', *args, '--checkpoint-every', '2', '--out', p('ck2'))
            assert r.returncode == 0, r.stderr
            ck = p('ck2', 'checkpoints', 'step-0000002.npz')
            meta = json.loads(np.load(ck)['meta.json'])
            assert 'ranks' not in json.dumps(meta), 'the checkpoint records the rank count'
            for how, ranks in [('np4', 4), ('np1', 1), ('plain', 0)]:
                out = p('resumed_' + how)
                rest = ['--resume', ck, '--iterations', '5', '--out', out, '--progress', 'none']
                r = mpirun(ranks, 'train', *rest) if ranks else run('train', *rest, env=ENV)
                assert r.returncode == 0, (how, r.stderr)
                assert_same_bits(full, out, 'resumed ' + how)

        @test
        def scale_sweeps_ranks_and_threads_with_the_same_bits():
            out = p('scale')
            r = run('scale', '--ranks', '1,2', '--threads', '1,2', '--steps', '3', '--reps', '1',
                    '--batch', '16', '--shards', '2', '--mpiexec', MPIEXEC, '--out', out, env=ENV)
            assert r.returncode == 0, r.stdout + r.stderr
            assert 'identical for every ranks x threads: yes' in r.stdout, r.stdout
            rows = list(csv.DictReader(open(os.path.join(out, 'scale_ranks.csv'))))
            assert [(x['ranks'], x['threads_per_rank']) for x in rows] == \
                [('1', '1'), ('1', '2'), ('2', '1'), ('2', '2')], rows
            for x in rows:
                step = float(x['step_ms'])
                parts = sum(float(x[k]) for k in ('compute_ms', 'wait_ms', 'communication_ms', 'sum_ms'))
                assert step > 0 and abs(parts - step) <= 1e-6 * step + 1e-6, x  # the split adds up
                assert float(x['communication_ms']) > 0, x  # the exchange was timed
                assert int(x['one_process_threads']) == int(x['ranks']) * int(x['threads_per_rank'])
            # more ranks than shards: refused before anything runs
            r = run('scale', '--ranks', '4', '--shards', '2', '--mpiexec', MPIEXEC, '--out', out, env=ENV)
            assert r.returncode == 2 and r.stderr.count('\n') == 1 and '--shards 2' in r.stderr, r.stderr
            r = run('scale', '--ranks', '1', '--mpiexec', '/nonexistent/mpirun', '--steps', '1',
                    '--reps', '1', '--out', out, env=ENV)
            assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'cannot start' in r.stderr, r.stderr

    return h.finish()


if __name__ == '__main__':
    sys.exit(main())
