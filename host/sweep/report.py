"""A sweep's summary table and plots, from its results file alone (``speckv-sweep summary``,
``speckv-sweep plot``).

Plots: ``pareto.png`` (replay cells: L2 hit rate against wasted prefetch bytes, one colour per
predictor, the Pareto front of each workload drawn), ``codec_ppl.png`` (codec cells:
compression ratio against the perplexity change from the FP16 baseline of the same text),
``serve_throughput.png`` (serve cells: tokens/s against batch, a line per configuration).
"""
from __future__ import annotations

from pathlib import Path

MiB = 2**20


def varying(records, skip=()):
    """The parameters whose values differ between ``records`` (their axes, in order)."""
    names = []
    for r in records:
        for a in r.get("axes") or r["params"]:
            if a not in names and a not in skip:
                names.append(a)
    return [n for n in names if len({repr(r["params"].get(n)) for r in records}) > 1]


def _trace_name(r):
    p = r["params"]
    return p.get("workload") or Path(p.get("trace") or "mini-replay").stem


def _f(x, fmt):
    return "-" if x is None else format(x, fmt)


def codec_baselines(records):
    """{key of a codec cell: its FP16 baseline's perplexity} (the raw cell of the same text,
    tokens, segments, window, rotation and model)."""
    def same(p):
        return tuple(sorted((k, repr(v)) for k, v in p.items() if k not in ("mode", "sink")))
    base = {same(r["params"]): r["result"]["ppl"] for r in records
            if r["kind"] == "codec" and r["status"] == "ok" and r["params"]["mode"] == "raw"}
    return {r["key"]: base.get(same(r["params"])) for r in records if r["kind"] == "codec"}


def rows(records):
    """{kind: (header, [row])} of the summary, one row per cell (per configuration: serve)."""
    out = {}
    by_kind = {}
    for r in records:
        by_kind.setdefault(r["kind"], []).append(r)
    base = codec_baselines(records)
    for kind, recs in by_kind.items():
        axes = varying(recs)
        head = list(axes)
        body = []
        if kind == "replay":
            head += ["L2 hit", "late", "precision", "wasted MiB", "ratio", "stall/step us",
                     "mismatch", "wall s"]
        elif kind == "codec":
            head += ["ratio", "ppl", "dppl %", "wall s"]
        else:
            head += ["config", "feasible", "tok/s", "step ms", "limit"]
        for r in recs:
            cells = [str(r["params"].get(a)) for a in axes]
            if r["status"] != "ok":
                body.append(cells + ["failed: " + r.get("error", "?")[:80]]
                            + [""] * (len(head) - len(cells) - 1))
                continue
            x = r["result"]
            if kind == "replay":
                a, pf = x["accesses"], x["prefetch"]
                body.append(cells + [_f(a["l2_hit_rate"], ".3f"), _f(a["late_rate"], ".3f"),
                                     _f(pf["precision"], ".3f"),
                                     _f(pf["wasted_bytes"] / MiB, ".1f"),
                                     _f(x["compression"]["ratio"], ".3f"),
                                     _f(x["latency_ns"]["stall_per_step_mean"] / 1e3, ".1f"),
                                     str(x["check"]["mismatches"]), _f(r["wall_s"], ".1f")])
            elif kind == "codec":
                b = base.get(r["key"])
                d = 100 * (x["ppl"] / b - 1) if b else None
                body.append(cells + [_f(x.get("ratio"), ".3f"), _f(x["ppl"], ".4f"),
                                     _f(d, "+.3f"), _f(r["wall_s"], ".1f")])
            else:
                for pt in x["points"]:
                    body.append(cells + [pt["config"], "yes" if pt["feasible"] else "no",
                                         _f(pt["tokens_per_s"], ".1f"),
                                         _f(pt["step_ns"] / 1e6, ".3f"), pt["limit"]])
        out[kind] = (head, body)
    return out


def summary_markdown(records):
    """The summary as Markdown tables, one per kind."""
    lines = []
    for kind, (head, body) in rows(records).items():
        lines += [f"### {kind} ({len(body)} rows)", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        lines.append("")
    return "\n".join(lines)


def pareto_front(points):
    """The points (x, y) no other point beats on both: less x (wasted) and more y (hits)."""
    front, best = [], -1.0
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _grid(plt, n):
    cols = min(n, 2)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(6 * cols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def plot_pareto(recs, path):
    plt = _plt()
    groups = {}
    for r in recs:
        groups.setdefault(_trace_name(r), []).append(r)
    fig, axes = _grid(plt, len(groups))
    preds = list(dict.fromkeys(r["params"]["prefetcher"] for r in recs))
    colours = {p: f"C{i}" for i, p in enumerate(preds)}
    for ax, (name, rs) in zip(axes, groups.items()):
        pts = []
        for r in rs:
            x = r["result"]["prefetch"]["wasted_bytes"] / MiB
            y = r["result"]["accesses"]["l2_hit_rate"] or 0.0
            pts.append((x, y))
            ax.scatter(x, y, color=colours[r["params"]["prefetcher"]], s=22, zorder=3)
            ax.annotate(f"k{r['params']['k']}", (x, y), fontsize=6, xytext=(3, 2),
                        textcoords="offset points")
        f = pareto_front(pts)
        ax.step([p[0] for p in f], [p[1] for p in f], where="post", color="0.4", lw=1,
                ls="--", zorder=2, label="Pareto front")
        ax.set_title(name)
        ax.set_xlabel("wasted prefetch (MiB)")
        ax.set_ylabel("L2 hit rate")
        ax.grid(alpha=0.3)
    for p, c in colours.items():
        axes[0].scatter([], [], color=c, label=p)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_codec(recs, path):
    plt = _plt()
    base = codec_baselines(recs)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    groups = {}
    for r in recs:
        if base.get(r["key"]) and r["params"]["mode"] != "raw":
            p = r["params"]
            g = f"{Path(p['text'].split(',')[0]).name}, window {p['window']}"
            groups.setdefault(g, []).append(r)
    for i, (g, rs) in enumerate(groups.items()):
        xs = [r["result"]["ratio"] for r in rs]
        ys = [100 * (r["result"]["ppl"] / base[r["key"]] - 1) for r in rs]
        ax.scatter(xs, ys, color=f"C{i}", label=g, s=22)
        for r, x, y in zip(rs, xs, ys):
            ax.annotate(r["params"]["mode"], (x, y), fontsize=6, xytext=(3, 2),
                        textcoords="offset points")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("compression ratio")
    ax.set_ylabel("perplexity change vs FP16 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_serve(recs, path):
    plt = _plt()
    axes_names = varying(recs, skip=("batch",))
    groups = {}
    for r in recs:
        g = ", ".join(f"{a} {r['params'][a]}" for a in axes_names) or r["params"]["model"]
        groups.setdefault(g, []).append(r)
    fig, axes = _grid(plt, len(groups))
    for ax, (g, rs) in zip(axes, groups.items()):
        lines = {}
        for r in rs:
            for pt in r["result"]["points"]:
                if pt["feasible"]:
                    lines.setdefault(pt["config"], []).append((pt["batch"], pt["tokens_per_s"]))
        for c, pts in lines.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=c)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(g, fontsize=9)
        ax.set_xlabel("batch")
        ax.set_ylabel("tokens/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PLOTS = {"replay": ("pareto.png", plot_pareto), "codec": ("codec_ppl.png", plot_codec),
         "serve": ("serve_throughput.png", plot_serve)}


def save_plots(records, folder):
    """Every plot the finished cells of ``records`` support; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for kind, (name, fn) in PLOTS.items():
        recs = [r for r in records if r["kind"] == kind and r["status"] == "ok"]
        if recs:
            fn(recs, folder / name)
            out.append(folder / name)
    return out
