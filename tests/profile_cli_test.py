#!/usr/bin/python3
"""End-to-end tests of profiling: `tapegrad train --profile` (the table, profile.json whose
parts add up to the step, and trace.json in the Chrome trace event format: every event has
name, ph, ts, pid, tid; complete events have dur; spans of a thread nest), `tapegrad scale`
(same weights at every thread count, CSV and plot) and `tapegrad peak`.

Usage: profile_cli_test.py TAPEGRAD_BINARY      (run by ctest with label `cli`)
"""
import csv
import json
import os
import sys
import tempfile

import numpy as np

import cli_harness as h
from cli_harness import expect_bad_input, run, test


def check_trace_format(trace):
    events = trace['traceEvents']
    assert isinstance(events, list) and events
    by_tid = {}
    names = {}
    for e in events:
        for k in ['name', 'ph', 'pid', 'tid']:
            assert k in e, (k, e)
        if e['ph'] == 'M':
            names[e['tid']] = e['args']['name']
            continue
        assert 'ts' in e and isinstance(e['ts'], (int, float)), e
        if e['ph'] == 'X':
            assert 'dur' in e and e['dur'] >= 0, e
            by_tid.setdefault(e['tid'], []).append((e['ts'], e['ts'] + e['dur'], e['name']))
        else:
            assert e['ph'] == 'i', e
    assert names.get(0) == 'main', names
    # Spans nest: on each track, sorted by start (ties: the longer first), every span lies
    # inside the enclosing open span or starts after it ended. ts/dur are microseconds printed
    # from integer nanoseconds, so they compare exactly up to 1 ns of float rounding.
    eps = 1e-3
    for tid, spans in by_tid.items():
        spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
        stack = []
        for t0, t1, name in spans:
            while stack and t0 >= stack[-1][1] - eps:
                stack.pop()
            if stack:
                assert t1 <= stack[-1][1] + eps, ('%s [%f, %f] overlaps %s [%f, %f] on track %d'
                                                  % (name, t0, t1, stack[-1][2], stack[-1][0],
                                                     stack[-1][1], tid))
            stack.append((t0, t1, name))
    return by_tid


def main():
    h.setup(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix='tapegrad_profile_test_') as tmp:
        def p(*parts):
            return os.path.join(tmp, *parts)

        @test
        def train_profile_writes_a_table_profile_json_and_a_valid_trace():
            out = p('prof')
            r = run('train', '--model', 'lenet5', '--data', 'fashion-mnist', '--train-size', '256',
                    '--test-size', '64', '--batch', '32', '--epochs', '1', '--profile',
                    '--trace-steps', '4', '--out', out, '--progress', 'none')
            if r.returncode == 2 and 'fashion-mnist' in r.stderr:
                print('skip: dataset-fashion-mnist not installed')
                return
            assert r.returncode == 0, r.stderr
            assert 'profile: 8 steps' in r.stdout and 'untracked' in r.stdout, r.stdout
            prof = json.load(open(os.path.join(out, 'profile.json')))
            assert prof['steps'] == 8
            ops = {o['name']: o for o in prof['ops']}
            # each conv2d and the first two linear layers fused with the relu after them
            assert set(ops) == {'conv2d+relu', 'max_pool2d', 'flatten', 'linear+relu', 'linear',
                                'cross_entropy'}, ops.keys()
            assert ops['conv2d+relu']['gflops'] > 0 and 0 < ops['conv2d+relu']['fraction_of_peak']
            # The table adds up: ops + parts + untracked = the step.
            total = sum(o['share'] for o in prof['ops']) + sum(q['share'] for q in prof['parts']) \
                + prof['shards_wait_share'] + prof['untracked_share']
            assert abs(total - 1) < 1e-9, total
            assert prof['untracked_share'] < 0.25, prof['untracked_share']
            trace = json.load(open(os.path.join(out, 'trace.json')))
            check_trace_format(trace)
            steps = [e for e in trace['traceEvents'] if e['name'] == 'step' and e['ph'] == 'X']
            assert len(steps) == 4, len(steps)              # --trace-steps 4
            convs = [e for e in trace['traceEvents'] if e['name'] == 'conv2d+relu' and e['ph'] == 'X']
            # lenet5's 4 shards per batch: each conv2d sees 32 / 4 = 8 images
            assert any('geometry' in e.get('args', {}) and 'x[8,1,28,28]' in e['args']['geometry']
                       for e in convs), convs[:2]
            assert any(e['ph'] == 'i' and e['name'] == 'epoch' for e in trace['traceEvents'])
            s = json.load(open(os.path.join(out, 'summary.json')))
            assert 'profile.json' in s['outputs'] and 'trace.json' in s['outputs']
            # --fuse off: the activations profiled as ops of their own, and the same weights
            r = run('train', '--model', 'lenet5', '--data', 'fashion-mnist', '--train-size', '256',
                    '--test-size', '64', '--batch', '32', '--epochs', '1', '--profile',
                    '--trace-steps', '4', '--out', out + '-apart', '--progress', 'none',
                    '--fuse', 'off')
            assert r.returncode == 0, r.stderr
            prof = json.load(open(os.path.join(out + '-apart', 'profile.json')))
            assert set(o['name'] for o in prof['ops']) == {'conv2d', 'relu', 'max_pool2d', 'flatten',
                                                           'linear', 'cross_entropy'}, prof['ops']
            a = np.load(os.path.join(out, 'weights.npz'))
            b = np.load(os.path.join(out + '-apart', 'weights.npz'))
            assert sorted(a.files) == sorted(b.files)
            for k in a.files:  # bit for bit (NaN would fail: there is none)
                assert np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes(), k

        @test
        def scale_gives_identical_weights_and_writes_csv_and_plot():
            out = p('scale')
            r = run('scale', '--model', 'seed', '--threads', '1,2', '--batch', '16', '--steps', '3',
                    '--reps', '2', '--out', out)
            assert r.returncode == 0, r.stdout + r.stderr
            assert 'identical for every thread count: yes' in r.stdout, r.stdout
            assert '2 reps of 3 steps per thread count' in r.stdout, r.stdout
            rows = list(csv.DictReader(open(os.path.join(out, 'scale.csv'))))
            assert [row['threads'] for row in rows] == ['1', '2'], rows
            assert float(rows[0]['speedup']) == 1.0  # each rep's 1-thread time over itself
            for row in rows:  # the median of the reps' speedups lies within their range
                assert float(row['speedup_min']) <= float(row['speedup']) <= float(row['speedup_max']), row
            assert 'conv2d+sigmoid_ms' in rows[0], rows[0].keys()  # the seed's conv2d and sigmoid, fused
            for f in ['scale.svg', 'scale.png']:
                assert os.path.getsize(os.path.join(out, f)) > 0

        @test
        def peak_reports_positive_rates():
            r = run('peak', '--seconds', '0.02', '--threads', '2', '--json')
            assert r.returncode == 0, r.stderr
            j = json.loads(r.stdout)
            assert j['isa'] in ('avx512', 'avx2', 'generic')
            for k in ['float', 'double']:
                assert j[k]['core_gflops'] > 0 and j[k]['all_gflops'] > 0, j

        @test
        def bad_profiling_options_are_one_line_errors():
            expect_bad_input(run('scale', '--threads', '1,,2', '--out', p('x')), '--threads', p('x'))
            expect_bad_input(run('scale', '--threads', '0', '--out', p('x')), '--threads', p('x'))
            expect_bad_input(run('scale', '--reps', '0', '--out', p('x')), '--reps', p('x'))
            expect_bad_input(run('train', '--model', 'seed', '--trace-steps', '3', '--out', p('x')),
                             '--trace-steps needs --profile', p('x'))
            expect_bad_input(run('peak', '--seconds', '-1'), '--seconds')

    return h.finish()


if __name__ == '__main__':
    sys.exit(main())
