#!/usr/bin/python3
"""Ranks x threads scaling of a data-parallel training step (tapegrad built with TAPEGRAD_MPI).

For every rank count P and thread count T, runs
    mpirun -np P tapegrad train --model lenet5 --shards S --threads T --profile ...
and reads rank 0's profile.json: the step time split into compute (everything but the
combination), wait (the barrier before the exchange: until the slowest rank has finished its
shards), communication (MPI_Allgatherv of every shard's gradient) and the sum in shard order;
then one process without MPI with the same total thread count P x T, and the ratio of the two
step times. Every figure is the median of --reps runs; runs of one repetition are interleaved
so that a noisy neighbour slows all configurations alike.

    bench/mpi_scale.py build/release/tapegrad [--ranks 1,2,4] [--threads 1,2] [--steps 40]
                       [--reps 3] [--shards 4] [--batch 64] [--mpiexec mpirun]

On one machine the ranks are oversubscribed when P x T exceeds its cores (--oversubscribe,
--bind-to none); as root, the Open MPI variables that allow it are set here.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def profile_of(cmd, out, env):
    r = subprocess.run(cmd + ['--out', out], capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0:
        sys.exit('mpi_scale: %s failed:\n%s' % (' '.join(cmd), r.stderr))
    prof = json.load(open(os.path.join(out, 'profile.json')))
    parts = {q['name']: q['ms_per_step'] for q in prof['parts']}
    step = prof['ms_per_step']
    wait, comm, summ = parts.get('wait', 0.0), parts.get('allgather', 0.0), parts.get('combine', 0.0)
    return {'step': step, 'wait': wait, 'comm': comm, 'sum': summ,
            'compute': step - wait - comm - summ}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('tapegrad')
    ap.add_argument('--ranks', default='1,2,4')
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--steps', type=int, default=40)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--shards', type=int, default=4)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--model', default='lenet5')
    ap.add_argument('--mpiexec', default='mpirun')
    a = ap.parse_args()
    ranks = [int(x) for x in a.ranks.split(',')]
    threads = [int(x) for x in a.threads.split(',')]
    env = dict(os.environ)
    env.update({'OMPI_ALLOW_RUN_AS_ROOT': '1', 'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM': '1',
                'OMPI_MCA_rmaps_base_oversubscribe': '1',
                # ranks waiting in MPI yield the core (Open MPI spins otherwise, taking it from
                # the ranks still computing when cores are shared or oversubscribed)
                'OMPI_MCA_mpi_yield_when_idle': '1'})
    train = ['train', '--model', a.model, '--train-size', str(a.batch * a.steps),
             '--iterations', str(a.steps), '--batch', str(a.batch), '--test-size', '10',
             '--shards', str(a.shards), '--profile', '--trace-steps', '0', '--progress', 'none']
    configs = [(p, t) for p in ranks for t in threads]
    mpi = {c: [] for c in configs}
    one = {c: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix='tapegrad_mpi_scale_') as tmp:
        for rep in range(a.reps):
            for p, t in configs:
                cmd = [a.mpiexec, '--oversubscribe', '--bind-to', 'none', '-np', str(p), a.tapegrad]
                mpi[(p, t)].append(profile_of(cmd + train + ['--threads', str(t)],
                                              os.path.join(tmp, 'mpi'), env))
                one[(p, t)].append(profile_of([a.tapegrad] + train + ['--threads', str(p * t)],
                                              os.path.join(tmp, 'one'), env))

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    print('%s, batch %d, %d shards, %d steps, median of %d; ms per step (rank 0)\n'
          % (a.model, a.batch, a.shards, a.steps, a.reps))
    print('| ranks | threads/rank | step ms | compute | wait | communication | sum | '
          'communication share | one process, same threads: step ms | MPI / one process |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for p, t in configs:
        m, o = mpi[(p, t)], one[(p, t)]
        step = med(m, 'step')
        print('| %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f %% | %.2f (%d threads) | %.2f |'
              % (p, t, step, med(m, 'compute'), med(m, 'wait'), med(m, 'comm'), med(m, 'sum'),
                 100 * med(m, 'comm') / step, med(o, 'step'), p * t, step / med(o, 'step')))


if __name__ == '__main__':
    main()
