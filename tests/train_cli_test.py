#!/usr/bin/python3
"""End-to-end tests of `tapegrad train`: the seed experiment's outputs, checkpoints that numpy
opens and that resume bit for bit, --init from PyTorch-style names, LeNet-5 on a slice of
Fashion-MNIST, and one-line errors with exit 2 and nothing written for bad options, data and
checkpoints.

Usage: train_cli_test.py TAPEGRAD_BINARY      (run by ctest with label `cli`)
"""
import csv
import json
import math
import os
import sys
import tempfile

import numpy as np

import cli_harness as h
from cli_harness import expect_bad_input, run, test

FMNIST = '/usr/share/datasets/fashion-mnist'


def main():
    h.setup(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix='tapegrad_train_test_') as tmp:
        def p(*parts):
            return os.path.join(tmp, *parts)

        @test
        def seed_training_writes_every_output_and_the_loss_falls():
            out = p('seed')
            r = run('train', '--model', 'seed', '--iterations', '2000', '--out', out,
                    '--progress', 'lines')
            assert r.returncode == 0, r.stderr
            for f in ['metrics.csv', 'summary.json', 'weights.npz', 'loss.svg', 'loss.png',
                      'accuracy.svg', 'accuracy.png']:
                assert os.path.getsize(os.path.join(out, f)) > 0, f
            assert 'plot: ' + os.path.join(out, 'loss.svg') in r.stdout, r.stdout
            rows = list(csv.DictReader(open(os.path.join(out, 'metrics.csv'))))
            train = [row for row in rows if row['split'] == 'train']
            test_rows = [row for row in rows if row['split'] == 'test']
            assert len(train) == 2000, len(train)             # one row per step for seed
            assert [int(row['step']) for row in train] == list(range(1, 2001))
            assert len(test_rows) == 10, len(test_rows)       # every 2000 / 10 steps
            # The loss sits near 0.25 for ~1000 steps, then falls (0.053 at step 2000 measured).
            assert float(train[-1]['loss']) < 0.5 * float(train[0]['loss']), (train[0], train[-1])
            s = json.load(open(os.path.join(out, 'summary.json')))
            assert s['configuration']['steps'] == 2000 and s['configuration']['full_batch']
            assert s['configuration']['dtype'] == 'double'
            assert s['final']['train_loss'] == float(train[-1]['loss']) or \
                abs(s['final']['train_loss'] - float(train[-1]['loss'])) < 1e-9 * s['final']['train_loss']
            for k in ['tapegrad', 'compiler', 'zlib', 'libzip']:
                assert s['versions'][k], k
            z = np.load(os.path.join(out, 'weights.npz'))
            assert sorted(z.files) == ['conv1.w', 'fc1.b', 'fc1.w', 'meta.json'], z.files
            assert z['conv1.w'].shape == (1, 1, 3, 3) and z['conv1.w'].dtype == np.float64
            assert json.loads(z['meta.json'])['format'] == 'tapegrad weights'
            svg = open(os.path.join(out, 'loss.svg')).read()
            assert svg.lstrip().startswith('<?xml') and '<svg' in svg and svg.rstrip().endswith('</svg>')

        @test
        def checkpoints_open_in_numpy_and_resume_bit_for_bit():
            whole, part = p('whole'), p('part')
            r = run('train', '--model', 'seed', '--iterations', '60', '--out', whole,
                    '--progress', 'none')
            assert r.returncode == 0, r.stderr
            r = run('train', '--model', 'seed', '--iterations', '25', '--checkpoint-every', '25',
                    '--out', part, '--progress', 'none')
            assert r.returncode == 0, r.stderr
            ck = os.path.join(part, 'checkpoints', 'step-0000025.npz')
            z = np.load(ck)
            meta = json.loads(z['meta.json'])
            assert meta['format'] == 'tapegrad checkpoint' and meta['step'] == 25, meta
            assert meta['recipe']['optimizer']['lr'] == 0.1
            # 25 train rows, and the test set every max(1, 25 // 10) = 2 steps (12) + at the end
            assert z['metrics'].shape == (25 + 13, 8), z['metrics'].shape
            r = run('train', '--resume', ck, '--iterations', '60', '--out', p('resumed'),
                    '--progress', 'none')
            assert r.returncode == 0, r.stderr
            a = np.load(os.path.join(whole, 'weights.npz'))
            b = np.load(os.path.join(p('resumed'), 'weights.npz'))
            for k in ['conv1.w', 'fc1.w', 'fc1.b']:
                assert np.array_equal(a[k], b[k]), (k, a[k], b[k])
            ra = open(os.path.join(whole, 'metrics.csv')).read().splitlines()
            rb = open(os.path.join(p('resumed'), 'metrics.csv')).read().splitlines()
            # The same training rows but the wall-clock column (the test-set cadence follows each
            # run's own length, so test rows differ before the resume point).
            strip = lambda rows: [','.join(r.split(',')[:-1]) for r in rows if r.startswith('train')]
            assert len(strip(ra)) == 60 and strip(ra) == strip(rb)

        @test
        def cosine_schedule_resumes_bit_for_bit_and_keeps_its_length():
            # The seed net with a cosine schedule over 40 steps, stopped at 16 and resumed: the
            # same weights, and the lr column of metrics.csv is lr (1 + cos(pi (t-1) / 40)) / 2.
            whole, part = p('cos_whole'), p('cos_part')
            common = ('--model', 'seed', '--lr', '0.2', '--lr-schedule', 'cosine', '--progress', 'none')
            r = run('train', *common, '--iterations', '40', '--out', whole)
            assert r.returncode == 0, r.stderr
            r = run('train', *common, '--iterations', '40', '--checkpoint-every', '16', '--out', part)
            assert r.returncode == 0, r.stderr
            ck = os.path.join(part, 'checkpoints', 'step-0000016.npz')
            r = run('train', '--resume', ck, '--iterations', '40', '--out', p('cos_resumed'),
                    '--progress', 'none')
            assert r.returncode == 0, r.stderr
            a = np.load(os.path.join(whole, 'weights.npz'))
            b = np.load(os.path.join(p('cos_resumed'), 'weights.npz'))
            for k in ['conv1.w', 'fc1.w', 'fc1.b']:
                assert np.array_equal(a[k], b[k]), (k, a[k], b[k])
            rows = [r.split(',') for r in open(os.path.join(whole, 'metrics.csv')).read().splitlines()[1:]]
            for row in rows:
                if row[0] == 'train':
                    t = int(row[2])
                    want = 0.2 * (1 + math.cos(math.pi * (t - 1) / 40)) / 2
                    # %.6g: six significant digits, half a unit of the sixth (and a little
                    # for the double rounding of the printed value)
                    tol = 0.5 * 10 ** (math.floor(math.log10(want)) - 5) * (1 + 1e-9)
                    assert abs(float(row[6]) - want) <= tol, (t, row[6], want)
            # Resuming for another length would bend the schedule: refused.
            out = p('cos_bad')
            expect_bad_input(run('train', '--resume', ck, '--iterations', '50', '--out', out),
                             'cosine schedule spans 40 steps', out)

        @test
        def init_reads_pytorch_names():
            w = p('torch.npz')
            np.savez(w, **{'conv1.weight': np.zeros((1, 1, 3, 3), np.float32),
                           'fc1.weight': np.ones((1, 1), np.float32),
                           'fc1.bias': np.zeros(1, np.float32)})
            r = run('train', '--model', 'seed', '--iterations', '1', '--lr', '1e-30', '--init', w,
                    '--out', p('init'), '--progress', 'none')
            assert r.returncode == 0, r.stderr
            z = np.load(os.path.join(p('init'), 'weights.npz'))
            # lr 1e-30: one step moves nothing visible in double from these values
            assert np.all(np.abs(z['conv1.w']) < 1e-25) and abs(z['fc1.w'][0, 0] - 1) < 1e-25

        @test
        def lenet5_trains_on_a_slice_of_fashion_mnist():
            if not os.path.exists(os.path.join(FMNIST, 'train-images-idx3-ubyte.gz')):
                print('skip: dataset-fashion-mnist not installed')
                return
            out = p('lenet5')
            r = run('train', '--model', 'lenet5', '--train-size', '640', '--test-size', '200',
                    '--epochs', '2', '--out', out, '--progress', 'lines', '--threads', '2')
            assert r.returncode == 0, r.stderr
            assert 'confusion matrix' in r.stdout
            rows = list(csv.DictReader(open(os.path.join(out, 'metrics.csv'))))
            tests = [row for row in rows if row['split'] == 'test']
            assert [int(t['epoch']) for t in tests] == [1, 2], tests
            assert all(int(t['images']) == 200 for t in tests)
            conf = list(csv.reader(open(os.path.join(out, 'confusion.csv'))))
            assert len(conf) == 11 and conf[1][0] == 'T-shirt/top'
            assert sum(int(v) for row in conf[1:] for v in row[1:]) == 200
            # 2 threads, lenet5's 4 shards: side by side, 2 groups of 1 thread
            assert '2 threads (2 shards side by side)' in r.stdout, r.stdout
            s = json.load(open(os.path.join(out, 'summary.json')))
            assert s['configuration']['batch'] == 64 and s['configuration']['steps_per_epoch'] == 10
            assert s['configuration']['shards'] == 4, s['configuration']
            assert len(s['seconds']['per_epoch']) == 2

        @test
        def bad_options_are_one_line_exit_2_and_write_nothing():
            out = p('never')
            for args, fragment in [
                (['--model', 'seed', '--lr', '-1'], '--lr'),
                (['--model', 'seed', '--batch', '0'], '--batch'),
                (['--model', 'seed', '--momentum', '1.5'], '--momentum'),
                (['--model', 'seed', '--data', 'cifar'], "expected synthetic or fashion-mnist"),
                (['--model', 'lenet5', '--data', 'fashion-mnist:' + p('nodata')], 'fashion-mnist'),
                (['--model', 'seed', '--data', 'fashion-mnist'], 'takes inputs'),
                (['--model', 'seed', '--epochs', '2', '--iterations', '3'], 'exclude each other'),
                (['--model', 'seed', '--optimizer', 'rmsprop'], 'sgd or adam'),
                (['--model', 'seed', '--train-size', '1000'], '--train-size'),
                (['--model', p('missing.spec')], 'missing.spec'),
                (['--iterations', '3'], '--model is required'),
                (['--model', 'seed', '--init', p('missing.npz')], 'missing.npz'),
                (['--model', 'seed', '--seed', '-1'], '--seed'),
                (['--model', 'seed', '--parallel', 'ranks'], '--parallel'),
            ]:
                expect_bad_input(run('train', *args, '--out', out), fragment, out)

        @test
        def bad_checkpoints_are_refused():
            ck = os.path.join(p('part'), 'checkpoints', 'step-0000025.npz')
            data = open(ck, 'rb').read()
            cut = p('cut.npz')
            open(cut, 'wb').write(data[:len(data) // 2])
            out = p('never2')
            expect_bad_input(run('train', '--resume', cut, '--out', out), 'cut.npz', out)
            flipped = bytearray(data)
            flipped[len(data) // 3] ^= 0x10
            open(p('flip.npz'), 'wb').write(bytes(flipped))
            expect_bad_input(run('train', '--resume', p('flip.npz'), '--out', out), 'flip.npz', out)
            expect_bad_input(run('train', '--resume', ck, '--model', 'lenet5', '--out', out),
                             'is not the network of the checkpoint', out)
            expect_bad_input(run('train', '--resume', ck, '--lr', '0.5', '--out', out),
                             "differs from the checkpoint's", out)
            expect_bad_input(run('train', '--resume', os.path.join(p('seed'), 'weights.npz'),
                                 '--out', out), 'not a tapegrad checkpoint', out)
            fifo = p('fifo.npz')
            os.mkfifo(fifo)
            expect_bad_input(run('train', '--resume', fifo, '--out', out, timeout=30), 'fifo.npz', out)

    return h.finish()


if __name__ == '__main__':
    sys.exit(main())
