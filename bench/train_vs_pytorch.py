#!/usr/bin/python3
"""LeNet-5 on Fashion-MNIST, tapegrad against PyTorch on the same recipe, side by side in one
run: seconds of training per epoch (the steps alone, no evaluation) at each thread count, the
ratio, and each one's 2-threads-over-1 speedup. The PyTorch side is bench/lenet5_pytorch.py.

    /usr/bin/python3 bench/train_vs_pytorch.py build/release/tapegrad [--epochs 1] [--threads 1,2]
        [--rounds 3] [--lr 0.01] [--lr-schedule constant|cosine]

The default recipe is the issue's peer recipe (lr 0.01, constant); tapegrad train's own lenet5
default is --lr 0.05 --lr-schedule cosine (pass those to compare on it).

The runs take turns: each of --rounds rounds trains once at every thread count with each
program (tapegrad's counts back to back, then PyTorch's), so a slow spell of a shared machine
falls on every cell alike rather than on whichever ran in that minute. Each ratio shown is the median of the rounds' own ratios (each
comparing runs made seconds apart), with its range; the seconds are the medians of the
rounds' per-epoch bests. Stop other work on the machine first.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def recipe(a):
    return ['--lr', str(a.lr), '--lr-schedule', a.lr_schedule, '--momentum', '0.9', '--batch', '64']


def tapegrad_epoch(binary, a, threads, out):
    subprocess.run([binary, 'train', '--model', 'lenet5', '--epochs', str(a.epochs), '--threads',
                    str(threads), '--out', out, '--progress', 'none'] + recipe(a), check=True,
                   stdout=subprocess.DEVNULL)
    s = json.load(open(os.path.join(out, 'summary.json')))
    return s['seconds']['training_per_epoch'], s['final']['test_accuracy']


def pytorch_epoch(a, threads):
    p = subprocess.run(['/usr/bin/python3', os.path.join(HERE, 'lenet5_pytorch.py'), '--epochs',
                        str(a.epochs), '--threads', str(threads)] + recipe(a), check=True, capture_output=True,
                       text=True)
    last = json.loads(p.stdout.strip().splitlines()[-1])
    return last['seconds_per_epoch'], last['test_accuracy'], last['torch']


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def spread(v):
    return '%.2f (%.2f-%.2f)' % (median(v), min(v), max(v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('tapegrad')
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--lr', type=float, default=0.01)
    ap.add_argument('--lr-schedule', choices=['constant', 'cosine'], default='constant')
    a = ap.parse_args()
    if a.rounds < 1 or a.epochs < 1:
        ap.error('--rounds and --epochs must be at least 1')
    counts = [int(t) for t in a.threads.split(',')]
    # cells[t] = list over rounds of (tapegrad s, PyTorch s, tapegrad acc, PyTorch acc)
    cells = {t: [] for t in counts}
    version = '?'
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            # each program's thread counts back to back, so that its speedup compares runs
            # seconds apart; the other program's runs come before or after, never between
            tg = {t: tapegrad_epoch(os.path.abspath(a.tapegrad), a, t, os.path.join(tmp, '%d-%d' % (r, t)))
                  for t in counts}
            pt = {}
            for t in counts:
                pt[t] = pytorch_epoch(a, t)
                version = pt[t][2]
            for t in counts:
                cells[t].append((min(tg[t][0]), min(pt[t][0]), tg[t][1], pt[t][1]))
                print('round %d, %d thread(s): tapegrad %.2f s, PyTorch %.2f s' % (
                    r + 1, t, cells[t][-1][0], cells[t][-1][1]), file=sys.stderr, flush=True)
    print('LeNet-5 on Fashion-MNIST, float32, batch 64, SGD momentum 0.9, lr %g (%s); training '
          'seconds per epoch (best of %d), %d rounds taking turns, PyTorch %s' % (
              a.lr, a.lr_schedule, a.epochs, a.rounds, version))
    print('%8s %12s %12s %22s %16s' % ('threads', 'tapegrad s', 'PyTorch s', 'tg / torch (range)',
                                       'test acc tg/pt'))
    for t in counts:
        c = cells[t]
        print('%8d %12.2f %12.2f %22s %8.2f%% %6.2f%%' % (
            t, median([x[0] for x in c]), median([x[1] for x in c]), spread([x[0] / x[1] for x in c]),
            100 * c[-1][2], 100 * c[-1][3]))
    if len(counts) > 1:
        lo, hi = counts[0], counts[-1]
        tg_speedup = [cells[lo][r][0] / cells[hi][r][0] for r in range(a.rounds)]
        pt_speedup = [cells[lo][r][1] / cells[hi][r][1] for r in range(a.rounds)]
        print('speedup %d threads over %d (median of the rounds, range): tapegrad %s, PyTorch %s' % (
            hi, lo, spread(tg_speedup), spread(pt_speedup)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
