"""Replay reports: a readable table and PNG plots from ``host/replay.py`` results."""

from __future__ import annotations

from pathlib import Path

from gateware.common import PAGE_BYTES as PAGE


def _f(x, fmt="{:.3f}", scale=1.0):
    return "-" if x is None else fmt.format(x * scale)


def table_rows(results):
    rows = []
    for r in results:
        c, a, p, lat = r["config"], r["accesses"], r["prefetch"], r["latency_ns"]
        tm = r.get("timing", {})
        overran = tm.get("steps_overran")
        rows.append([c["label"] or c["prefetcher"], c["backend"], str(c["k"]) + ("u" if c["ucb"] else "")
                     + ("t" if c["throttle"] else ""), tm.get("mode", "off")[:3],
                     str(a["l1"]), str(a["l2"]), str(a.get("late", 0)), str(a.get("miss", a["l3"])),
                     _f(a["l2_hit_rate"]),
                     _f(p["precision"]), f"{p['wasted_bytes'] / 2**20:.2f}",
                     _f(lat["sync_fetch_mean"], "{:.0f}"), _f(lat["effective_mean"], "{:.1f}"),
                     _f(lat["stall_per_step_mean"], "{:.0f}"), _f(p["mean_step_ns"], "{:.0f}"),
                     f"{r['check']['pages_checked']}/{r['check']['mismatches']}",
                     _f(r["check"].get("max_error_over_bound"), "{:.2f}"),
                     "-" if overran is None else f"{overran}/{c['steps']}"])
    return rows


HEAD = ["config", "backend", "k", "timing", "L1", "L2 hits", "late", "misses", "L2 hit rate",
        "precision", "wasted MiB", "sync fetch ns", "eff. ns/access", "stall ns/step",
        "prefetch ns/step", "checked/bad", "err/bound", "overran"]


def markdown_table(results):
    out = ["| " + " | ".join(HEAD) + " |", "|" + " --- |" * len(HEAD)]
    out += ["| " + " | ".join(r) + " |" for r in table_rows(results)]
    return "\n".join(out)


def latency_source(results):
    """Where the latency columns come from (the same for every result of one backend)."""
    return "; ".join(sorted({r["latency_ns"].get("source", "?") for r in results}))


def print_table(results):
    rows = [HEAD] + table_rows(results)
    w = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
    r0 = results[0]["config"]
    print(f"trace {Path(r0['trace']).name} ({r0['mode']}, {r0['steps']} steps, {r0['layers']} "
          f"layers), link {r0['link']}, codec {r0['codec']}")
    for i, r in enumerate(rows):
        print("  ".join(x.rjust(w[j]) for j, x in enumerate(r)))
        if i == 0:
            print("  ".join("-" * x for x in w))
    print(f"latencies: {latency_source(results)}")
    for r in results:
        s, comp = r["speed"], r["compression"]
        extra = (f", {s['sim_cycles_per_s'] / 1e3:.1f} k sim cycles/s" if s.get("sim_cycles_per_s") else "")
        print(f"{r['config']['label'] or r['config']['prefetcher']}: {s['steps_per_s']:.2f} steps/s"
              f"{extra}; compression {_f(comp['ratio'], '{:.3f}')}x over {comp['pages']} pages; "
              f"{r['check']['pages_checked']} pages checked, {r['check']['mismatches']} mismatches")


def _save(plt, fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_plots(results, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    files = []
    labels = [r["config"]["label"] or r["config"]["prefetcher"] for r in results]

    fig, ax = plt.subplots(figsize=(7, 4))
    for lab, r in zip(labels, results):
        n = r["accesses"]["total"]
        lat = sorted([0.0] * (n - len(r["latencies_ns"])) + r["latencies_ns"])
        if lat:
            ax.plot(lat, [(i + 1) / len(lat) for i in range(len(lat))], label=lab)
    ax.set_xlabel("page access latency (ns, added over local memory)")
    ax.set_ylabel("CDF")
    ax.set_title("Effective access latency")
    ax.legend(fontsize=8)
    files.append(_save(plt, fig, outdir / "latency_cdf.png"))

    fig, axes = plt.subplots(len(results), 1, figsize=(7, 1.8 * len(results) + 0.6), squeeze=False)
    for ax, lab, r in zip(axes[:, 0], labels, results):
        st = r["per_step"]
        x = [p["step"] for p in st]
        tot = [max(1, p["l1"] + p["l2"] + p["l3"]) for p in st]
        ax.stackplot(x, [p["l1"] / t for p, t in zip(st, tot)], [p["l2"] / t for p, t in zip(st, tot)],
                     [p["l3"] / t for p, t in zip(st, tot)], labels=["L1", "L2", "L3 (demand)"])
        ax.set_ylim(0, 1)
        ax.set_ylabel(lab, fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    axes[0, 0].set_title("Hit rate per tier over decode steps")
    axes[-1, 0].set_xlabel("decode step")
    files.append(_save(plt, fig, outdir / "tiers_per_step.png"))

    per_layer = next((r["compression"]["per_layer"] for r in results if r["compression"]["per_layer"]), {})
    if per_layer:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.bar([int(k) for k in per_layer], list(per_layer.values()))
        ax.set_xlabel("layer")
        ax.set_ylabel("compression ratio")
        ax.set_title(f"Per-layer compression ratio ({results[0]['config']['codec']})")
        files.append(_save(plt, fig, outdir / "compression_per_layer.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for lab, r in zip(labels, results):
        st = r["per_step"]
        ax.plot([p["step"] for p in st], [(p["l3"] * PAGE + p["issued"] * (PAGE + 64)) / 2**20 for p in st],
                label=lab)
    ax.set_xlabel("decode step")
    ax.set_ylabel("MiB over the link (demand + prefetch)")
    ax.set_title("Link bandwidth use per decode step")
    ax.legend(fontsize=8)
    files.append(_save(plt, fig, outdir / "link_bytes_per_step.png"))
    return files


WORKLOAD_HEAD = ["workload", "config", "timing", "L2 hit rate (outside L1)", "late rate",
                 "miss rate", "prefetch precision", "wasted prefetch MiB",
                 "effective ns / access", "stall µs / step", "step µs (timed)",
                 "device µs / step", "overran steps", "pages checked / bad", "max error / bound"]


def _share(n, a):
    return None if a["l2"] + a["l3"] == 0 else n / (a["l2"] + a["l3"])


def workload_rows(results):
    """Rows of the four-workload table of docs/RESULTS.md (one per replay result): the L2
    hits, late prefetches and misses as shares of the reads outside L1."""
    rows = []
    for r in results:
        c, a, p, lat, chk = r["config"], r["accesses"], r["prefetch"], r["latency_ns"], r["check"]
        tm = r.get("timing", {})
        timed = tm.get("mode") == "on" and tm.get("steps_overran") is not None
        rows.append([c.get("workload") or Path(c["trace"]).stem, c["label"] or c["prefetcher"],
                     c.get("timing", "off"), _f(a["l2_hit_rate"]),
                     _f(_share(a.get("late", 0), a)), _f(_share(a.get("miss", a["l3"]), a)),
                     _f(p["precision"]), f"{p['wasted_bytes'] / 2**20:.1f}",
                     _f(lat["effective_mean"], "{:.0f}"),
                     f"{lat['stall_per_step_mean'] / 1e3:.0f}",
                     _f(tm.get("step_ns_mean") if timed else None, "{:.0f}", 1e-3),
                     f"{p['mean_step_ns'] / 1e3:.0f}",
                     str(tm["steps_overran"]) if timed else "-",
                     f"{chk['pages_checked']} / {chk['mismatches']}",
                     _f(chk.get("max_error_over_bound") if chk["pages_checked"] else None)])
    return rows


POOLED_HEAD = ["config", "timing", "reads outside L1", "L2 hit rate", "late rate", "miss rate",
               "precision", "effective ns / access", "stall µs / step", "step µs (timed)",
               "overran", "link GB/s (timed)"]


def pooled_rows(results):
    """One row per (config, timing) over every workload given: counts summed, means weighted
    by accesses (latency) or steps (stall, step time), link bytes over the timed replay's
    whole duration."""
    groups = {}
    for r in results:
        c = r["config"]
        groups.setdefault((c["label"] or c["prefetcher"], c.get("timing", "off")), []).append(r)
    rows = []
    for (label, timing), rs in groups.items():
        a = {k: sum(r["accesses"].get(k, 0) for r in rs) for k in ("total", "l2", "l3", "late")}
        outside = a["l2"] + a["l3"]
        miss = sum(r["accesses"].get("miss", r["accesses"]["l3"]) for r in rs)
        issued = sum(r["prefetch"]["issued"] for r in rs)
        used = sum(r["prefetch"]["used"] for r in rs)
        steps = sum(r["config"]["steps"] for r in rs)
        timed = all(r.get("timing", {}).get("steps_overran") is not None for r in rs)
        dur = sum(r["timing"]["step_ns_mean"] * r["config"]["steps"] for r in rs) if timed else 0
        link = sum(sum(r["link_bytes"].values()) for r in rs)
        share = (lambda n: None if outside == 0 else n / outside)
        rows.append([label, timing, str(outside), _f(share(a["l2"])), _f(share(a["late"])),
                     _f(share(miss)), _f(used / issued if issued else None),
                     _f(sum(r["latency_ns"]["effective_mean"] * r["accesses"]["total"]
                            for r in rs) / a["total"], "{:.0f}"),
                     _f(sum(r["latency_ns"]["stall_per_step_mean"] * r["config"]["steps"]
                            for r in rs) / steps, "{:.0f}", 1e-3),
                     _f(dur / steps if timed else None, "{:.0f}", 1e-3),
                     f"{sum(r['timing']['steps_overran'] for r in rs)} / {steps}" if timed
                     else "-",
                     _f(link / dur if timed and dur else None, "{:.2f}")])
    return rows


def _print_md(head, rows):
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(argv=None):
    import argparse
    import json
    ap = argparse.ArgumentParser(prog="python -m host.replayer.report",
                                 description="Tables from replay result files (host/replay.py "
                                             "--json): the workload table of docs/RESULTS.md, "
                                             "or (--pooled) its totals over the workloads.")
    ap.add_argument("json", nargs="+", help="result files (one result or a --compare list each)")
    ap.add_argument("--pooled", action="store_true",
                    help="one row per configuration and timing, pooled over all the files")
    a = ap.parse_args(argv)
    results = []
    for f in a.json:
        try:
            r = json.loads(Path(f).read_text())
        except (OSError, ValueError) as e:
            ap.error(f"{f}: {e}")
        results += r if isinstance(r, list) else [r]
    if a.pooled:
        _print_md(POOLED_HEAD, pooled_rows(results))
    else:
        _print_md(WORKLOAD_HEAD, workload_rows(results))
    print(f"\nlatencies: {latency_source(results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
