#!/usr/bin/env python3
"""PyTorch CPU baseline for the LSTM-AE training-epoch benchmark (models/benches/lstm_epoch.rs).

Same architecture as moldops_models::lstm_ae::LstmAe: LSTM encoder (F→16→4), the last hidden
state repeated over the window, LSTM decoder (4→4→16), a dense layer per step (16→F); Adam
(lr 1e-3), mean squared error, batches of 32 in a seeded shuffled order. Reads the windows the
Rust bench wrote (raw little-endian f32, shape from the JSON beside it), runs one warm-up
epoch and then times `--epochs` epochs. Prints one JSON line: {"seconds_per_epoch": ...}.

Usage: train_torch.py --data windows.f32 --shape shape.json [--epochs 1] [--threads N]
"""
import argparse
import json
import time

import numpy as np
import torch
from torch import nn


class LstmAe(nn.Module):
    def __init__(self, f, encoder=(16, 4)):
        super().__init__()
        sizes = [f, *encoder]
        self.enc = nn.ModuleList(nn.LSTM(a, b, batch_first=True) for a, b in zip(sizes, sizes[1:]))
        dec = [encoder[-1], *reversed(encoder)]
        self.dec = nn.ModuleList(nn.LSTM(a, b, batch_first=True) for a, b in zip(dec, dec[1:]))
        self.out = nn.Linear(dec[-1], f)

    def forward(self, x):
        w = x.shape[1]
        h = x
        for layer in self.enc:
            h, (last, _) = layer(h)
        z = last[-1].unsqueeze(1).repeat(1, w, 1)
        for layer in self.dec:
            z, _ = layer(z)
        return self.out(z)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--shape", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    shape = json.load(open(a.shape))
    n, w, f = shape["n"], shape["w"], shape["f"]
    x = torch.from_numpy(np.fromfile(a.data, dtype="<f4").reshape(n, w, f).copy())
    torch.manual_seed(42)
    model = LstmAe(f)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(42)

    def epoch():
        total = 0.0
        for idx in torch.randperm(n, generator=gen).split(a.batch_size):
            xb = x[idx]
            opt.zero_grad()
            loss = ((model(xb) - xb) ** 2).mean()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        return total / n

    epoch()  # warm-up
    start = time.perf_counter()
    for _ in range(a.epochs):
        loss = epoch()
    secs = (time.perf_counter() - start) / a.epochs
    print(json.dumps({"seconds_per_epoch": secs, "loss": loss, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
