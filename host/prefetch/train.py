"""Train the LSTM prefetcher (float, torch), pick the epoch by validation coverage, quantize
to INT8 and write the weights file that the integer reference and the firmware header use.

    speckv-prefetch-train --help
    speckv-prefetch-train                       # traces from build/traces-train (data.py)

Fixed seeds, one torch thread: the same traces and options give the same weights.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from host.prefetch.core import N_F, N_X, QuantLSTMWeights, Q

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRAIN_DIR = ROOT / "build" / "traces-train"


def _torch():
    import torch
    torch.set_num_threads(1)
    return torch


def build_model(hidden: int):
    torch = _torch()
    nn = torch.nn

    class PrefetchLSTM(nn.Module):
        """x_t (multi-hot, N_X) -> LSTM(hidden) -> w_t = W_o h_t + b_o (N_F); the score of a
        page is the sum of w_t over its active features (index N_F = padding, weight 0)."""

        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(N_X, hidden, batch_first=True)
            self.out = nn.Linear(hidden, N_F)

        def forward(self, xin, feat):
            B, S, _ = xin.shape
            x = torch.zeros(B, S, N_X).scatter_(2, xin, 1.0)
            h, _ = self.lstm(x)
            w = torch.cat([self.out(h), torch.zeros(B, S, 1)], dim=-1)   # [B, S, N_F + 1]
            C = feat.shape[2]
            wexp = w.unsqueeze(2).expand(B, S, C, N_F + 1)
            return torch.gather(wexp, 3, feat).sum(-1)                     # [B, S, C]

    return PrefetchLSTM()


def stack(datas):
    """Concatenate per-trace tensors along streams, padding steps (valid = False)."""
    S = max(d["xin"].shape[1] for d in datas)
    out = {}
    for key in ("xin", "feat", "cand", "label", "valid"):
        parts = []
        for d in datas:
            a = d[key]
            pad = S - a.shape[1]
            if pad:
                fill = {"feat": N_F, "cand": -1}.get(key, 0)
                if key == "xin":  # repeat the last input: harmless, these steps are masked
                    a = np.concatenate([a, np.repeat(a[:, -1:], pad, axis=1)], axis=1)
                else:
                    a = np.concatenate([a, np.full((a.shape[0], pad) + a.shape[2:], fill, a.dtype)], axis=1)
            parts.append(a)
        out[key] = np.concatenate(parts, axis=0)
    return out


def float_rankings(model, data, kmax=16):
    """preds[t][s] ranked by the float model's scores (lower page first on ties)."""
    torch = _torch()
    from host.prefetch.dataset import rank_from_scores
    with torch.no_grad():
        sc = model(torch.from_numpy(data["xin"]), torch.from_numpy(data["feat"])).numpy()
    NS, S = data["xin"].shape[:2]
    return [[rank_from_scores(sc[s, t], data["cand"][s, t], kmax) for s in range(NS)]
            for t in range(S - 1)]


def quantize(sd: dict) -> QuantLSTMWeights:
    """Power-of-two per-tensor scales: w_q = clip(round(w * 2^e), -127, 127), e the largest
    that keeps max |w| * 2^e <= 127; biases in Q12 int32 (b_ih + b_hh folded)."""
    def q8(w):
        m = float(np.abs(w).max())
        e = int(np.floor(np.log2(127.0 / m))) if m > 0 else 0
        e = max(-8, min(e, 24))
        return np.clip(np.round(w * 2.0 ** e), -127, 127).astype(np.int64), e
    wx, ex = q8(sd["f_wih"])
    wh, eh = q8(sd["f_whh"])
    wo, eo = q8(sd["f_wo"])
    b = np.round((sd["f_bih"] + sd["f_bhh"]) * (1 << Q)).astype(np.int64)
    bo = np.round(sd["f_bo"] * (1 << Q)).astype(np.int64)
    return QuantLSTMWeights(wx, ex, wh, eh, b, wo, eo, bo)


def float_arrays(model) -> dict:
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    return {"f_wih": sd["lstm.weight_ih_l0"], "f_whh": sd["lstm.weight_hh_l0"],
            "f_bih": sd["lstm.bias_ih_l0"], "f_bhh": sd["lstm.bias_hh_l0"],
            "f_wo": sd["out.weight"], "f_bo": sd["out.bias"]}


def load_float(path, model=None):
    """A float model with the float weights of an .npz weights file."""
    torch = _torch()
    z = np.load(path)
    hidden = z["f_whh"].shape[1]
    model = model or build_model(hidden)
    sd = {"lstm.weight_ih_l0": z["f_wih"], "lstm.weight_hh_l0": z["f_whh"],
          "lstm.bias_ih_l0": z["f_bih"], "lstm.bias_hh_l0": z["f_bhh"],
          "out.weight": z["f_wo"], "out.bias": z["f_bo"]}
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()})
    model.eval()
    return model


def save_weights(path, fl: dict, q: QuantLSTMWeights, info: dict):
    np.savez(path, **fl, q_wx=q.wx.astype(np.int8), q_ex=np.int64(q.ex), q_wh=q.wh.astype(np.int8),
             q_eh=np.int64(q.eh), q_b=q.b.astype(np.int32), q_wo=q.wo.astype(np.int8),
             q_eo=np.int64(q.eo), q_bo=q.bo.astype(np.int32),
             info=np.array(json.dumps(info, sort_keys=True)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="speckv-prefetch-train",
        description="Train the LSTM KV-page prefetcher on training traces (documents disjoint "
                    "from the evaluation workloads), select the epoch on validation traces, "
                    "quantize to INT8 and write the weights (.npz). Regenerate the firmware "
                    "header afterwards with speckv-prefetch-export.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--train-dir", type=Path, default=DEFAULT_TRAIN_DIR,
                    help="directory of the traces written by python -m host.prefetch.data")
    ap.add_argument("--train", nargs="*", default=None,
                    help="training trace names (default: data.TRAIN)")
    ap.add_argument("--val", nargs="*", default=None, help="validation trace names (default: data.VAL)")
    ap.add_argument("--hidden", type=int, default=16, help="LSTM hidden units")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "weights" / "lstm.npz")
    args = ap.parse_args(argv)

    torch = _torch()
    from host.prefetch import data as D
    from host.prefetch.dataset import extract, load_streams
    from host.prefetch.metrics import mean_coverage, score

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    train_names = args.train or list(D.TRAIN)
    val_names = args.val or list(D.VAL)
    t0 = time.time()
    tr_streams = [load_streams(args.train_dir / f"{n}.safetensors", "sparse") for n in train_names]
    va_streams = [load_streams(args.train_dir / f"{n}.safetensors", "sparse") for n in val_names]
    tr = stack([extract(s) for s in tr_streams])
    va = [extract(s) for s in va_streams]
    print(f"features: {tr['xin'].shape[0]} train sequences x {tr['xin'].shape[1]} steps, "
          f"{len(va)} validation traces ({time.time() - t0:.1f} s)", flush=True)

    model = build_model(args.hidden)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    xin, feat = torch.from_numpy(tr["xin"]), torch.from_numpy(tr["feat"])
    label = torch.from_numpy(tr["label"])
    mask = torch.from_numpy((tr["cand"] >= 0) & tr["valid"][:, :, None]).float()
    lossf = torch.nn.BCEWithLogitsLoss(reduction="none")
    best = (-1.0, -1, None)
    history = []
    for ep in range(1, args.epochs + 1):
        model.train()
        opt.zero_grad()
        sc = model(xin, feat)
        loss = (lossf(sc, label) * mask).sum() / mask.sum()
        loss.backward()
        opt.step()
        if ep % args.eval_every == 0 or ep == args.epochs:
            model.eval()
            cov = float(np.mean([mean_coverage(score(s, float_rankings(model, d)))
                                 for s, d in zip(va_streams, va)]))
            history.append({"epoch": ep, "loss": float(loss.detach()), "val_coverage_k248": cov})
            print(f"epoch {ep:4d} loss {float(loss.detach()):.4f} val coverage(k=2,4,8) {cov:.4f}", flush=True)
            if cov > best[0]:
                best = (cov, ep, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    model.eval()
    fl = float_arrays(model)
    q = quantize(fl)
    info = {"train": [s.name for s in tr_streams], "val": [s.name for s in va_streams],
            "hidden": args.hidden, "epochs": args.epochs, "best_epoch": best[1],
            "val_coverage_k248": best[0], "lr": args.lr, "seed": args.seed, "params": n_params,
            "torch": torch.__version__, "history": history}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(args.out, fl, q, info)
    print(f"{n_params} parameters; best epoch {best[1]} (val coverage {best[0]:.4f}); "
          f"wrote {args.out} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
