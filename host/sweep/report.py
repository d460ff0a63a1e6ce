"""A sweep's summary table and plots, from its results file alone (``speckv-sweep summary``,
``speckv-sweep plot``).

Plots: ``pareto.png`` (replay cells: L2 hit rate against wasted prefetch bytes, one colour per
predictor, the Pareto front of each workload drawn), ``codec_ppl.png`` (codec cells:
compression ratio against the perplexity change from the FP16 baseline of the same text),
``serve_throughput.png`` (serve cells: tokens/s against batch, a line per configuration).
"""
from __future__ import annotations

import json
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


def _order(records, axes):
    """Sort key of a record: its axis values, numbers ascending, other values in the order
    they first appear (results arrive in completion order)."""
    first = {a: {} for a in axes}
    for r in records:
        for a in axes:
            first[a].setdefault(repr(r["params"].get(a)), len(first[a]))

    def key(r):
        out = []
        for a in axes:
            v = r["params"].get(a)
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            out.append((0, v) if num else (1, first[a][repr(v)]))
        return out
    return key


def codec_baselines(records):
    """{key of a codec cell: its FP16 baseline's perplexity} (the raw cell of the same text,
    tokens, segments, window, rotation and model)."""
    def same(p):
        return tuple(sorted((k, repr(v)) for k, v in p.items() if k not in ("mode", "sink")))
    base = {same(r["params"]): r["result"]["ppl"] for r in records
            if r["kind"] == "codec" and r["status"] == "ok" and r["params"]["mode"] == "raw"}
    return {r["key"]: base.get(same(r["params"])) for r in records if r["kind"] == "codec"}


# Summary columns per kind: (header, field of a summary row, format).
COLUMNS = {
    "replay": [("L2 hit", "l2_hit_rate", ".3f"), ("late", "late_rate", ".3f"),
               ("precision", "precision", ".3f"), ("wasted MiB", "wasted_mib", ".1f"),
               ("ratio", "ratio", ".3f"), ("stall/step us", "stall_us", ".1f"),
               ("mismatch", "mismatches", "d"), ("wall s", "wall_s", ".1f")],
    "codec": [("ratio", "ratio", ".3f"), ("ppl", "ppl", ".4f"), ("dppl %", "dppl_pct", "+.3f"),
              ("wall s", "wall_s", ".1f")],
    "serve": [("config", "config", "s"), ("feasible", "feasible", "s"),
              ("tok/s", "tokens_per_s", ".1f"), ("step ms", "step_ms", ".3f"),
              ("limit", "limit", "s")],
}


def _metrics(r, base):
    """The summary rows of one finished record (one per configuration for serve)."""
    x = r["result"]
    if r["kind"] == "replay":
        a, pf = x["accesses"], x["prefetch"]
        return [{"l2_hit_rate": a["l2_hit_rate"], "late_rate": a["late_rate"],
                 "precision": pf["precision"], "wasted_mib": pf["wasted_bytes"] / MiB,
                 "ratio": x["compression"]["ratio"],
                 "stall_us": x["latency_ns"]["stall_per_step_mean"] / 1e3,
                 "mismatches": x["check"]["mismatches"], "wall_s": r["wall_s"]}]
    if r["kind"] == "codec":
        b = base.get(r["key"])
        return [{"ratio": x.get("ratio"), "ppl": x["ppl"], "wall_s": r["wall_s"],
                 "dppl_pct": 100 * (x["ppl"] / b - 1) if b else None}]
    return [{"config": p["config"], "feasible": "yes" if p["feasible"] else "no",
             "tokens_per_s": p["tokens_per_s"], "step_ms": p["step_ns"] / 1e6,
             "limit": p["limit"]} for p in x["points"]]


def summary_rows(records):
    """{kind: {"axes": [...], "rows": [...]}}: a row per cell (per configuration: serve),
    its axis values, then its metrics (``COLUMNS``) or its error."""
    by_kind = {}
    for r in records:
        by_kind.setdefault(r["kind"], []).append(r)
    base = codec_baselines(records)
    out = {}
    for kind, recs in by_kind.items():
        axes = varying(recs)
        rows = []
        for r in sorted(recs, key=_order(recs, axes)):
            head = {"kind": kind, **{a: r["params"].get(a) for a in axes}}
            if r["status"] != "ok":
                rows.append({**head, "error": r.get("error", "?")})
                continue
            rows += [{**head, **m} for m in _metrics(r, base)]
        out[kind] = {"axes": axes, "rows": rows}
    return out


def summary_markdown(records):
    """The summary as Markdown tables, one per kind."""
    lines = []
    for kind, t in summary_rows(records).items():
        cols = COLUMNS[kind]
        head = t["axes"] + [c[0] for c in cols]
        lines += [f"### {kind} ({len(t['rows'])} rows)", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in t["rows"]:
            cells = [str(row[a]) for a in t["axes"]]
            if "error" in row:
                cells += ["failed: " + row["error"][:80]] + [""] * (len(cols) - 1)
            else:
                cells += [_f(row[f], fmt) for _, f, fmt in cols]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_summary(records, results_path, name):
    """``NAME.summary.md`` and ``NAME.summary.json`` beside the results file."""
    base = Path(results_path).with_suffix("")
    md = Path(f"{base}.summary.md")
    md.write_text(f"# sweep {name}\n\n" + summary_markdown(records))
    js = Path(f"{base}.summary.json")
    js.write_text(json.dumps(summary_rows(records), indent=1) + "\n")
    return md, js


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
        pts, labels = [], {}
        for r in rs:
            x = r["result"]["prefetch"]["wasted_bytes"] / MiB
            y = r["result"]["accesses"]["l2_hit_rate"] or 0.0
            pts.append((x, y))
            ax.scatter(x, y, color=colours[r["params"]["prefetcher"]], s=22, zorder=3)
            labels.setdefault((x, y), []).append(str(r["params"]["k"]))
        for (x, y), ks in labels.items():      # one label for the k that coincide
            ax.annotate("k" + ",".join(sorted(set(ks), key=int)), (x, y), fontsize=6,
                        xytext=(3, 2), textcoords="offset points")
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
