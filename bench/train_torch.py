#!/usr/bin/env python3
"""PyTorch CPU baseline of the LSTM-AE training-epoch benchmark (models/benches/lstm_epoch.rs).

The network `moldops-cloud train` ships (moldops_models::lstm_ae, LstmAeConfig::new): each window
centred on its context (the mean of its first W-1 shots plus the mean of their deviations from it
clipped to +-centre_clip), an LSTM encoder (F->16->4) over the first W-1 shots only (the last shot
is predicted, not reconstructed), its last hidden state repeated over W steps, an LSTM decoder
(4->4->16), a dense layer per step (16->F), the centre added back; Adam (lr 1e-3), mean squared
error over the whole window, batches of 32 in a seeded shuffled order. Reads the windows the Rust
bench wrote (raw little-endian f32; shape and network settings from the JSON beside it), runs one
warm-up epoch, then times `--epochs` epochs. Prints one JSON line with the time and the network's
layers and steps, which the Rust bench checks against its own.

`--device cuda` runs it on the GPU (bench/gpu, models/benches/gpu_epoch.rs), synchronising before
the clock is read.

Usage: train_torch.py --data windows.f32 --shape shape.json [--epochs 1] [--threads N]
                      [--batch-size 32] [--device cpu|cuda]
"""
import argparse
import json
import time

import numpy as np
import torch
from torch import nn


class LstmAe(nn.Module):
    def __init__(self, f, encoder, centre, clip, predict_last):
        super().__init__()
        sizes = [f, *encoder]
        self.enc = nn.ModuleList(nn.LSTM(a, b, batch_first=True) for a, b in zip(sizes, sizes[1:]))
        dec = [encoder[-1], *reversed(encoder)]
        self.dec = nn.ModuleList(nn.LSTM(a, b, batch_first=True) for a, b in zip(dec, dec[1:]))
        self.out = nn.Linear(dec[-1], f)
        self.centre, self.clip, self.predict_last = centre, clip, predict_last

    def encoder_steps(self, w):
        return w - 1 if self.predict_last and w > 1 else w

    def reconstruct(self, x):
        w = x.shape[1]
        h = x[:, : self.encoder_steps(w)]
        for layer in self.enc:
            h, (last, _) = layer(h)
        z = last[-1].unsqueeze(1).repeat(1, w, 1)
        for layer in self.dec:
            z, _ = layer(z)
        return self.out(z)

    def forward(self, x):
        if not self.centre:
            return self.reconstruct(x)
        w = x.shape[1]
        ctx = x[:, : w - 1] if w > 1 else x
        c = ctx.mean(dim=1, keepdim=True)
        if self.clip > 0:
            c = c + (ctx - c).clamp(-self.clip, self.clip).mean(dim=1, keepdim=True)
        return self.reconstruct(x - c) + c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--shape", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    shape = json.load(open(a.shape))
    n, w, f = shape["n"], shape["w"], shape["f"]
    x = torch.from_numpy(np.fromfile(a.data, dtype="<f4").reshape(n, w, f).copy()).to(dev)
    torch.manual_seed(42)
    model = LstmAe(f, shape["encoder"], shape["centre"], shape["centre_clip"], shape["predict_last"]).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(42)

    def epoch():
        total = 0.0
        for idx in torch.randperm(n, generator=gen).to(dev).split(a.batch_size):
            xb = x[idx]
            opt.zero_grad()
            loss = ((model(xb) - xb) ** 2).mean()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        return total / n

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    epoch()  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(a.epochs):
        loss = epoch()
    sync()
    secs = (time.perf_counter() - start) / a.epochs
    layers = [[m.input_size, m.hidden_size] for m in [*model.enc, *model.dec]]
    print(json.dumps({"seconds_per_epoch": secs, "loss": loss, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "device": str(dev),
                      "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                      "lstm_layers": layers,
                      "output_layer": [model.out.in_features, model.out.out_features],
                      "encoder_steps": model.encoder_steps(w), "decoder_steps": w}))


if __name__ == "__main__":
    main()
