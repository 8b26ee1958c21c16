#!/usr/bin/python3
"""LeNet-5 on Fashion-MNIST, tapegrad against PyTorch on the same recipe, side by side in one
run: seconds of training per epoch (the steps alone, no evaluation) at each thread count, the
ratio, and each one's 2-threads-over-1 speedup. The PyTorch side is bench/lenet5_pytorch.py.

    /usr/bin/python3 bench/train_vs_pytorch.py build/release/tapegrad [--epochs 1] [--threads 1,2]

Stop other work on the machine first: the two programs run one after the other, so load that
changes during the run changes the ratio.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def tapegrad_epoch(binary, epochs, threads, out):
    subprocess.run([binary, 'train', '--model', 'lenet5', '--epochs', str(epochs), '--threads',
                    str(threads), '--out', out, '--progress', 'none'], check=True,
                   stdout=subprocess.DEVNULL)
    s = json.load(open(os.path.join(out, 'summary.json')))
    return s['seconds']['training_per_epoch'], s['final']['test_accuracy']


def pytorch_epoch(epochs, threads):
    p = subprocess.run(['/usr/bin/python3', os.path.join(HERE, 'lenet5_pytorch.py'), '--epochs',
                        str(epochs), '--threads', str(threads)], check=True, capture_output=True,
                       text=True)
    last = json.loads(p.stdout.strip().splitlines()[-1])
    return last['seconds_per_epoch'], last['test_accuracy'], last['torch']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('tapegrad')
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--threads', default='1,2')
    a = ap.parse_args()
    counts = [int(t) for t in a.threads.split(',')]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in counts:
            tg, tg_acc = tapegrad_epoch(os.path.abspath(a.tapegrad), a.epochs, t, os.path.join(tmp, str(t)))
            pt, pt_acc, version = pytorch_epoch(a.epochs, t)
            rows.append((t, min(tg), min(pt), tg_acc, pt_acc))
    print('LeNet-5 on Fashion-MNIST, float32, batch 64, SGD momentum 0.9, lr 0.01; training seconds '
          'per epoch (best of %d), PyTorch %s' % (a.epochs, version))
    print('%8s %14s %14s %12s %16s' % ('threads', 'tapegrad s', 'PyTorch s', 'tg / torch', 'test acc tg/pt'))
    for t, tg, pt, ta, pa in rows:
        print('%8d %14.2f %14.2f %12.2f %8.2f%% %6.2f%%' % (t, tg, pt, tg / pt, 100 * ta, 100 * pa))
    if len(rows) > 1:
        print('speedup %d threads over %d: tapegrad %.2f, PyTorch %.2f' % (
            rows[-1][0], rows[0][0], rows[0][1] / rows[-1][1], rows[0][2] / rows[-1][2]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
