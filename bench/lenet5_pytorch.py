#!/usr/bin/python3
"""The PyTorch peer of `tapegrad train --model lenet5`: the same network, data, normalisation
and recipe (float32, batch 64, SGD momentum 0.9, lr 0.01, PyTorch's default initialization, a
fresh shuffle per epoch), timed per epoch at a given thread count. Prints one JSON line per
epoch and a summary line; used by bench/train_vs_pytorch.py.

    /usr/bin/python3 bench/lenet5_pytorch.py --epochs 1 --threads 1
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    assert data[0] == 0 and data[1] == 0 and data[2] == 8, path
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(directory, stem):
    x = read_idx(os.path.join(directory, stem + '-images-idx3-ubyte.gz')).astype(np.float32)
    y = read_idx(os.path.join(directory, stem + '-labels-idx1-ubyte.gz')).astype(np.int64)
    # The same constants as tapegrad (data/fashion_mnist.hpp)
    x = (x / np.float32(255) - np.float32(0.2860)) / np.float32(0.3530)
    return torch.from_numpy(x[:, None, :, :].copy()), torch.from_numpy(y.copy())


class LeNet5(nn.Module):
    # tapegrad's lenet5 preset: conv 6x5x5 pad 2, relu, maxpool 2; conv 16x5x5, relu, maxpool 2;
    # 400 -> 120 -> 84 -> 10 with relu between.
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--lr', type=float, default=0.01)
    ap.add_argument('--momentum', type=float, default=0.9)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--train-size', type=int, default=0)
    ap.add_argument('--data', default='/usr/share/datasets/fashion-mnist')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.data, 'train')
    xte, yte = load(a.data, 't10k')
    if a.train_size:
        xtr, ytr = xtr[:a.train_size], ytr[:a.train_size]
    model = LeNet5()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    rng = np.random.default_rng(a.seed)
    n = xtr.shape[0]
    epochs = []
    for epoch in range(a.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(n))
        t0 = time.perf_counter()
        total = 0.0
        for b in range(0, n, a.batch):
            idx = order[b:b + a.batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum())
                          for i in range(0, xte.shape[0], 1000))
        rec = {'epoch': epoch + 1, 'seconds': seconds, 'train_loss': total / n,
               'test_accuracy': correct / xte.shape[0], 'threads': a.threads}
        epochs.append(rec)
        print(json.dumps(rec), flush=True)
    print(json.dumps({'summary': True, 'torch': torch.__version__, 'threads': a.threads,
                      'seconds_per_epoch': [e['seconds'] for e in epochs],
                      'test_accuracy': epochs[-1]['test_accuracy']}))


if __name__ == '__main__':
    main()
