"""What scripts/check_doc_figures.py checks: the entry types, the JSON paths and formats
they use, and REGISTRY, every figure the docs cite with the committed JSON it comes from.

The entry types and path syntax are described in check_doc_figures.py's docstring
(`python scripts/check_doc_figures.py --help`). To check a new figure or table, add an
entry to REGISTRY here (docs/bitstreams.md's are in doc_figures_bitstreams.py);
check_doc_figures.py reads the docs and compares.
"""

import math
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Union

Path_ = Union[str, Callable]
Fmt = Union[str, Callable]


class Val(NamedTuple):
    path: Path_
    fmt: Fmt = "{:,}"
    source: Optional[str] = None  # the entry's source when None


@dataclass
class Figures:
    doc: str
    section: str
    source: str
    template: str
    values: dict


class Col(NamedTuple):
    header: str
    path: Path_
    fmt: Fmt = "{:,}"
    pattern: Optional[str] = None


@dataclass
class Table:
    doc: str
    section: str
    source: str
    keys: tuple
    columns: list
    rows: Optional[dict] = None
    table: int = 0


# --- JSON paths and formats ---------------------------------------------------------------

_STEP = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def _field(record, key):
    """A record's field for a selector; a dotted key reaches into nested dicts."""
    for k in key.split("."):
        record = record.get(k) if isinstance(record, dict) else None
    return record


def get(data, path):
    """The value at `path` (see the module docstring) in `data`; KeyError if there is none."""
    if callable(path):
        return path(data)
    for key, select in _STEP.findall(path):
        if key:
            if isinstance(data, list):
                data = data[int(key)]
            elif key in data:
                data = data[key]
            elif key.endswith("?"):          # optional: an absent key reads as None
                data = data.get(key[:-1]) if isinstance(data, dict) else None
                if data is None:
                    return None
            else:
                raise KeyError(f"no key {key!r}")
            continue
        if select.isdigit():
            data = data[int(select)]
            continue
        conds = [c.split("=", 1) for c in select.split(",")]
        if any(len(c) != 2 for c in conds):
            raise KeyError(f"bad selector [{select}]")
        hits = [x for x in data if all(str(_field(x, k.strip())) == v.strip() for k, v in conds)]
        if len(hits) != 1:
            raise KeyError(f"[{select}] matches {len(hits)} elements, not 1")
        data = hits[0]
    return data


def calc(label, fn):
    """A path function `fn` of the loaded JSON, named `label` in the messages."""
    fn.label = label
    return fn


def share(used, total, scale=100):
    """scale * value at `used` / value at `total` (a percentage by default)."""
    return calc(f"{scale} * {used} / {total}", lambda d: scale * get(d, used) / get(d, total))


def change(before, after):
    """Percent change from the value at `before` to the value at `after`."""
    return calc(f"{after} / {before} - 1 (%)",
                lambda d: 100 * (get(d, after) / get(d, before) - 1))


def diff(before, after):
    return calc(f"{after} - {before}", lambda d: get(d, after) - get(d, before))


def same(*paths):
    """The one value at all `paths` ("each decompressor 7,822"); a mismatch if they differ."""
    def f(d):
        vals = [get(d, p) for p in paths]
        return vals[0] if len(set(vals)) == 1 else "differ: " + " / ".join(map(str, vals))
    return calc("same(" + ", ".join(paths) + ")", f)


def percent(digits):
    """Format a fraction as a percentage; None or NaN (nothing to divide) is written "-"."""
    def f(v):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) \
            else f"{100 * v:.{digits}f}"
    return f


# --- the registry ---------------------------------------------------------------------------

BITSTREAMS = "docs/bitstreams.md"
CODEC_PAGE = "docs/codec.md"
PREFETCH_PAGE = "docs/prefetch.md"
ULX3S = "docs/bitstreams/ulx3s.json"
ULX3S_FIRST = "docs/bitstreams/ulx3s-a6c641a.json"  # the first report (commit a6c641a), replaced in 4bf21e4
ULX3S_13 = "docs/bitstreams/ulx3s-2c0da38.json"     # the 13 MHz report of main 2c0da38
ECPIX5 = "docs/bitstreams/ecpix5.json"
ECPIX5_48 = "docs/bitstreams/ecpix5-bcfa3fa.json"   # the 48 MHz report of main bcfa3fa
CORES = "docs/bitstreams/ecpix5_cores.json"
CODEC = "docs/bitstreams/codec_ecp5.json"
PREFETCH = "docs/results/prefetch/results.json"
PREFETCH_TOKEN_LM = "docs/results/prefetch/token_lm.json"
PREFETCH_BENCH = "docs/results/prefetch/bench.json"


def core(module, field_="lut", source=None):
    return Val(f"cores[module={module}].{field_}", "{:,}", source)


def used(resource, source=None):
    """used / available / percentage of a device resource after place and route."""
    u = f"utilization_pnr.{resource}"
    return {"used": Val(f"{u}.used", "{:,}", source),
            "avail": Val(f"{u}.available", "{:,}", source),
            "pct": Val(share(f"{u}.used", f"{u}.available"), "{:.1f}", source)}


CODEC_SECTION = "ECP5 resources and Fmax of the cores alone"

REGISTRY = [
    # docs/codec.md: the ECP5 table of the cores alone (codec_ecp5.json runs)
    Table(CODEC_PAGE, CODEC_SECTION, CODEC, keys=("core", "mode"),
          rows={("KVCompressor", "kivi_k4v3"): "runs[18].rows[core=compressor,mode=kivi_k4v3]",
                ("KVDecompressor", "kivi_k4v3"):
                    "runs[19].rows[mode=kivi_k4v3,seed=1]",
                ("KVCompressor", "kivi_n10v9"): "runs[18].rows[core=compressor,mode=kivi_n10v9]",
                ("KVDecompressor", "kivi_n10v9"):
                    "runs[19].rows[mode=kivi_n10v9,seed=1]",
                ("KVCompressor", "kivi_z10v9 (at c050a85, before the level-field tree)"):
                    "runs[1].rows[core=compressor]",
                ("KVDecompressor", "kivi_z10v9 (at c050a85)"): "runs[1].rows[core=decompressor]"},
          columns=[Col("LUT4", "lut4"), Col("CCU2C", "ccu2c"), Col("FF", "ff"), Col("EBR", "ebr"),
                   Col("DSP (MULT18X18D)", "dsp"),
                   Col("logic cells (of 83,640)", "comb", "{:,}", "{v} (*"),
                   Col("logic cells (of 83,640)", share("comb", "comb_avail"), "{:.1f}",
                       "* ({v} %)"),
                   Col("Fmax", "fmax_mhz", "{:.1f}", "{v} MHz")]),
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
            "compressor {before} -> **{after} MHz** (+{gain} %; {dsp0} -> {dsp1} DSPs, "
            "+{lut} LUT4)",
            {"before": Val("runs[3].rows[core=compressor].fmax_mhz", "{:.1f}"),
             "after": Val("runs[4].rows[core=compressor].fmax_mhz", "{:.1f}"),
             "gain": Val(change("runs[3].rows[core=compressor].fmax_mhz",
                                "runs[4].rows[core=compressor].fmax_mhz"), "{:.0f}"),
             "dsp0": Val("runs[3].rows[core=compressor].dsp"),
             "dsp1": Val("runs[4].rows[core=compressor].dsp"),
             "lut": Val(diff("runs[3].rows[core=compressor].lut4",
                             "runs[4].rows[core=compressor].lut4"))}),
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC, "measured *slower*, {tree_before} -> {tree} MHz",
            {"tree_before": Val("runs[3].rows[core=decompressor].fmax_mhz", "{:.1f}"),
             "tree": Val("runs[5].rows[core=decompressor].fmax_mhz", "{:.1f}")}),
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
            "ran at {before} MHz ({ns} ns: digits, dequantizer and FP16 conversion in one cycle to "
            "the output); with the output pipeline, {after} MHz (+{gain} %)",
            {"before": Val("runs[2].rows.0.fmax_mhz", "{:.1f}"),
             "ns": Val(calc("1000 / runs[2].rows.0.fmax_mhz",
                            lambda d: 1000 / get(d, "runs[2].rows.0.fmax_mhz")), "{:.0f}"),
             "after": Val("runs[1].rows[core=decompressor].fmax_mhz", "{:.1f}"),
             "gain": Val(change("runs[2].rows.0.fmax_mhz",
                                "runs[1].rows[core=decompressor].fmax_mhz"), "{:.0f}")}),
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
            "decompressor goes from {before} to **{after} MHz** (+{gain} %; {dsp0} -> {dsp1} "
            "DSPs, +{lut} LUT4, +{ff} FF)",
            {"before": Val("runs[6].rows.0.fmax_mhz", "{:.1f}"),
             "after": Val("runs[9].rows.0.fmax_mhz", "{:.1f}"),
             "gain": Val(change("runs[6].rows.0.fmax_mhz", "runs[9].rows.0.fmax_mhz"), "{:.0f}"),
             "dsp0": Val("runs[6].rows.0.dsp"), "dsp1": Val("runs[9].rows.0.dsp"),
             "lut": Val(diff("runs[6].rows.0.lut4", "runs[9].rows.0.lut4"), "{:,}"),
             "ff": Val(diff("runs[6].rows.0.ff", "runs[9].rows.0.ff"), "{:,}")}),
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
            "Without that stage it reached {mid} MHz",
            {"mid": Val("runs[7].rows.0.fmax_mhz", "{:.1f}")}),
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
            "the registers add {delta} FFs to that decompressor ({ff0} -> {ff1})",
            {"delta": Val(diff("runs[2].rows.0.ff", "runs[1].rows[core=decompressor].ff")),
             "ff0": Val("runs[2].rows.0.ff"), "ff1": Val("runs[1].rows[core=decompressor].ff")}),
    # issue 22, second part: each core before (k4v3 compressor remeasured at cb4c158, the
    # n10v9 compressor at 85e3be0, the decompressors at 69fa79d) and now
    *[Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
              f"{name} kivi_k4v3: {{k0}} -> **{{k1}} MHz**; kivi_n10v9: {{n0}} -> **{{n1}} MHz**",
              {"k0": Val(f"{k_before}.fmax_mhz", "{:.1f}"),
               "k1": Val(f"runs[12].rows[core={core},mode=kivi_k4v3].fmax_mhz", "{:.1f}"),
               "n0": Val(f"{n_before}.fmax_mhz", "{:.1f}"),
               "n1": Val(f"runs[12].rows[core={core},mode=kivi_n10v9].fmax_mhz", "{:.1f}")})
      for name, core, k_before, n_before in (
          ("KVCompressor", "compressor", "runs[11].rows.0", "runs[4].rows[core=compressor]"),
          ("KVDecompressor", "decompressor", "runs[9].rows.0", "runs[10].rows.0"))],
    # issue 22, fifth part (run 18) against the fourth (compressors, run 17) and the third
    # (decompressors, run 14)
    *[Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
              f"- {mode}: compressor {{c0}} -> **{{c1}} MHz** and decompressor {{d0}} -> "
              "**{d1} MHz**.",
              {"c0": Val(f"runs[17].rows[core=compressor,mode={mode}].fmax_mhz", "{:.1f}"),
               "c1": Val(f"runs[18].rows[core=compressor,mode={mode}].fmax_mhz", "{:.1f}"),
               "d0": Val(f"runs[14].rows[core=decompressor,mode={mode}].fmax_mhz", "{:.1f}"),
               "d1": Val(f"runs[18].rows[core=decompressor,mode={mode}].fmax_mhz", "{:.1f}")})
      for mode in ("kivi_k4v3", "kivi_n10v9")],
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC, "seed 2, {f} MHz: run 20)",
            {"f": Val("runs[20].rows[mode=kivi_k4v3].fmax_mhz", "{:.1f}")}),
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
            "decompressors close over three placer seeds at kivi_k4v3 {k1}, {k2} and {k3} MHz and\n"
            "kivi_n10v9 {n1}, {n2} and {n3} MHz (seeds 1, 2, 3)",
            {f"{m[5]}{k}": Val(f"runs[19].rows[mode={m},seed={k}].fmax_mhz", "{:.1f}")
             for m in ("kivi_k4v3", "kivi_n10v9") for k in (1, 2, 3)}),
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
            "kivi_k4v3 {k1}, {k2} and {k3} MHz and kivi_n10v9 {n1}, {n2} and {n3} MHz (seeds 1,\n2, 3)",
            {"k1": Val("runs[18].rows[core=compressor,mode=kivi_k4v3].fmax_mhz", "{:.1f}"),
             "n1": Val("runs[18].rows[core=compressor,mode=kivi_n10v9].fmax_mhz", "{:.1f}"),
             **{f"{m[5]}{k}": Val(f"runs[21].rows[mode={m},seed={k}].fmax_mhz", "{:.1f}")
                for m in ("kivi_k4v3", "kivi_n10v9") for k in (2, 3)}}),
    # issue 22, fourth part: the compressors (runs 16, 17) against the third part (run 14)
    *[Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
              f"- {mode} compressor: {{c0}} -> **{{c1}} MHz** (run 16{tail}",
              {"c0": Val(f"runs[14].rows[core=compressor,mode={mode}].fmax_mhz", "{:.1f}"),
               "c1": Val(f"runs[16].rows[core=compressor,mode={mode}].fmax_mhz", "{:.1f}"),
               "c2": Val(f"runs[17].rows[core=compressor,mode={mode}].fmax_mhz", "{:.1f}")})
      for mode, tail in (("kivi_k4v3", ", `c7bb4cf`) -> **{c2} MHz** (run 17,\n  `fc158de`)."),
                         ("kivi_n10v9", ") -> **{c2} MHz** (run 17)."))],
    Figures(CODEC_PAGE, CODEC_SECTION, ULX3S, "The ULX3S netlist's compressor also shrank, "
            "{lut0} -> {lut1} LUT.",
            {"lut0": core("codec_compressor", source="docs/bitstreams/ulx3s-0d1c4f7.json"),
             "lut1": core("codec_compressor", source="docs/bitstreams/ulx3s-c7bb4cf.json")}),
    # issue 22, third part (run 14) against the second (run 12)
    *[Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
              f"- {mode}: compressor {{c0}} -> **{{c1}} MHz**, decompressor {{d0}} -> **{{d1}} MHz**.",
              {"c0": Val(f"runs[12].rows[core=compressor,mode={mode}].fmax_mhz", "{:.1f}"),
               "c1": Val(f"runs[14].rows[core=compressor,mode={mode}].fmax_mhz", "{:.1f}"),
               "d0": Val(f"runs[12].rows[core=decompressor,mode={mode}].fmax_mhz", "{:.1f}"),
               "d1": Val(f"runs[14].rows[core=decompressor,mode={mode}].fmax_mhz", "{:.1f}")})
      for mode in ("kivi_k4v3", "kivi_n10v9")],
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
            "kivi_k4v3 {k1}, {k2} and {k3} MHz,\nkivi_n10v9 {n1}, {n2} and {n3} MHz (seeds 1, 2, 3)",
            {"k1": Val("runs[12].rows[core=decompressor,mode=kivi_k4v3].fmax_mhz", "{:.1f}"),
             "k2": Val("runs[13].rows[mode=kivi_k4v3,seed=2].fmax_mhz", "{:.1f}"),
             "k3": Val("runs[13].rows[mode=kivi_k4v3,seed=3].fmax_mhz", "{:.1f}"),
             "n1": Val("runs[12].rows[core=decompressor,mode=kivi_n10v9].fmax_mhz", "{:.1f}"),
             "n2": Val("runs[13].rows[mode=kivi_n10v9,seed=2].fmax_mhz", "{:.1f}"),
             "n3": Val("runs[13].rows[mode=kivi_n10v9,seed=3].fmax_mhz", "{:.1f}")}),
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
            "kivi_k4v3 reaches {k1}, {k2} and {k3} MHz (seeds 1, 2, 3) and\nkivi_n10v9 {n1}, "
            "{n2} and {n3} MHz",
            {"k1": Val("runs[14].rows[core=decompressor,mode=kivi_k4v3].fmax_mhz", "{:.1f}"),
             "k2": Val("runs[15].rows[mode=kivi_k4v3,seed=2].fmax_mhz", "{:.1f}"),
             "k3": Val("runs[15].rows[mode=kivi_k4v3,seed=3].fmax_mhz", "{:.1f}"),
             "n1": Val("runs[14].rows[core=decompressor,mode=kivi_n10v9].fmax_mhz", "{:.1f}"),
             "n2": Val("runs[15].rows[mode=kivi_n10v9,seed=2].fmax_mhz", "{:.1f}"),
             "n3": Val("runs[15].rows[mode=kivi_n10v9,seed=3].fmax_mhz", "{:.1f}")}),
    Figures(CODEC_PAGE, CODEC_SECTION, CODEC,
            "kivi_k4v3, one build per step (seed 1; those intermediate builds' JSON was not kept): "
            "{k0}",
            {"k0": Val("runs[11].rows.0.fmax_mhz", "{:.1f}")}),
    Figures(CODEC_PAGE, CODEC_SECTION, CORES,
            "the compressor reaches {comp} MHz and the decompressors {dec} and {page_dec} MHz",
            {"comp": Val("rows[core=codec_compressor].min_fmax_mhz", "{:.1f}"),
             "dec": Val("rows[core=codec_decompressor].min_fmax_mhz", "{:.1f}"),
             "page_dec": Val("rows[core=page_decompressor].min_fmax_mhz", "{:.1f}")}),
    Figures(CODEC_PAGE, CODEC_SECTION, ULX3S_FIRST,
            "the compressor went from {lut0} LUT + {ram0} distributed-RAM cells + {ebr0} EBR "
            "(first report, `a6c641a`) to {lut1} LUT + {ram1} distributed-RAM cells + {ebr1} EBR "
            "(the 13 MHz\nreport, `docs/bitstreams/ulx3s-2c0da38.txt`), and the whole design from "
            "{pct0} % to {pct1} % of the LUT sites",
            {"lut0": core("codec_compressor"), "ram0": core("codec_compressor", "lutram"),
             "ebr0": core("codec_compressor", "ebr"),
             "lut1": core("codec_compressor", source=ULX3S_13),
             "ram1": core("codec_compressor", "lutram", ULX3S_13),
             "ebr1": core("codec_compressor", "ebr", ULX3S_13),
             "pct0": used("TRELLIS_COMB")["pct"], "pct1": used("TRELLIS_COMB", ULX3S_13)["pct"]}),
    Figures(CODEC_PAGE, CODEC_SECTION, ECPIX5_48,
            "compressor {lut} LUT + {ebr} EBR, {pct} % of the LUT sites) the codec clock (the "
            "compressor and decompressors behind CodecCDC) reached {fmax} MHz",
            {"lut": core("codec_compressor"), "ebr": core("codec_compressor", "ebr"),
             "pct": used("TRELLIS_COMB")["pct"],
             "fmax": Val("clocks[net=$glbnet$board_soc_clkout2].achieved_mhz", "{:.2f}")}),

    # docs/prefetch.md: the held-out tables (docs/results/prefetch/*.json)
    Table(PREFETCH_PAGE, "Page predictors on held-out documents", PREFETCH, table=0,
          keys=("workload", "predictor"),
          columns=[Col(f"k={k}", f"results[workload={{workload}}].modes.sparse.{{predictor}}.{k}"
                                 ".hit_rate", percent(1)) for k in (1, 2, 4, 8, 16)]),
    Table(PREFETCH_PAGE, "Page predictors on held-out documents", PREFETCH, table=1,
          keys=("workload", "predictor"),
          columns=[Col(f"k={k}", f"results[workload={{workload}}].modes.sparse.{{predictor}}.{k}"
                                 f".{name}", fmt, pattern)
                   for k in (1, 2, 4, 8, 16)
                   for name, fmt, pattern in (
                       ("coverage", percent(1), "{v} / * / *"),
                       ("precision", percent(1), "* / {v} / *"),
                       ("wasted_bytes_per_step", lambda v: f"{v / 1024:.0f}", "* / * / {v}"))]),
    Table(PREFETCH_PAGE, "top-4 accuracy", PREFETCH_TOKEN_LM,
          keys=("workload",),
          columns=[Col("tokens", "rows[workload={workload}].tokens", "{}"),
                   Col("out-of-vocabulary %", "rows[workload={workload}].oov_share", percent(1)),
                   Col("top-4 LSTM %", "rows[workload={workload}].top4_lstm", percent(1)),
                   Col("top-4 bigram %", "rows[workload={workload}].top4_bigram", percent(1)),
                   Col("top-4 unigram %", "rows[workload={workload}].top4_unigram", percent(1)),
                   Col("paper %", "paper_top4", percent(0))]),
    Table(PREFETCH_PAGE, "Cycles per prediction", PREFETCH_BENCH,
          keys=("predictor",),
          rows={({"none": "none (timer overhead)", "lstm_c": "lstm (C)",
                   "lstm_cfu": "lstm (CFU)"}.get(k, k),): f"rows.{k}"
                for k in ("none", "last", "stride", "markov", "layer_ahead", "lstm_c", "lstm_cfu")},
          columns=[Col("mean cycles", "cycles_mean", "{:,.0f}"),
                   Col("median", "cycles_p50", "{:,.0f}"), Col("max", "cycles_max"),
                   Col("us @ 50 MHz", "us_at_50MHz", "{:.1f}"),
                   Col("us @ 60 MHz", "us_at_60MHz", "{:.1f}")]),
]


# docs/RESULTS.md: the four-workload replay table (host/replay.py --compare --timing both, one
# file per workload; python -m host.replayer.report prints the table) and the demo's rtl row
# (python -m host.replayer.equivalence).
RESULTS = "docs/RESULTS.md"


def opt(fmt, scale=1.0, none_if=(None,)):
    """Format value * scale; "-" for a value in `none_if` (nothing measured)."""
    return lambda v: "-" if v in none_if else fmt.format(v * scale)


def _replay(path):
    return f"[config.label={{config}},config.timing={{timing}}].{path}"


def _rate(key):
    """A count of the reads outside L1 (late prefetches, misses) as their share."""
    def fmt(a):
        n = a["l2"] + a["l3"]
        return "-" if n == 0 else f"{a.get(key, a['l3'] if key == 'miss' else 0) / n:.3f}"
    return fmt


REPLAY_COLUMNS = [
    Col("L2 hit rate (outside L1)", _replay("accesses.l2_hit_rate"), opt("{:.3f}")),
    Col("late rate", _replay("accesses"), _rate("late")),
    Col("miss rate", _replay("accesses"), _rate("miss")),
    Col("prefetch precision", _replay("prefetch.precision"), opt("{:.3f}")),
    Col("wasted prefetch MiB", _replay("prefetch.wasted_bytes"),
        opt("{:.1f}", 2.0 ** -20)),
    Col("effective ns / access", _replay("latency_ns.effective_mean"),
        opt("{:.0f}")),
    Col("stall µs / step", _replay("latency_ns.stall_per_step_mean"),
        opt("{:.0f}", 1e-3)),
    Col("step µs (timed)", _replay("timing.step_ns_mean?"), opt("{:.0f}", 1e-3)),
    Col("device µs / step", _replay("prefetch.mean_step_ns"), opt("{:.0f}", 1e-3)),
    Col("overran steps", _replay("timing.steps_overran?"), opt("{:.0f}")),
    Col("pages checked / bad", _replay("check.pages_checked"), "{}", "{v} / *"),
    Col("pages checked / bad", _replay("check.mismatches"), "{}", "* / {v}"),
    Col("max error / bound", _replay("check.max_error_over_bound"),
        opt("{:.3f}", none_if=(None, 0.0))),
]

REGISTRY += [
    Table(RESULTS, "End-to-end trace replay", "docs/results/replay/timing/{workload}.json",
          keys=("workload", "config", "timing"), columns=REPLAY_COLUMNS),
    Table(RESULTS, "With the LSTM unit", "docs/results/replay/timing_cfu/{workload}.json",
          keys=("workload", "config", "timing"), columns=REPLAY_COLUMNS),
    Table(RESULTS, "The demo on the rtl backend", "docs/results/rtl_vs_model_mini.json",
          keys=("accesses",), rows={("17190",): "totals.rtl"},
          columns=[Col("accesses", "accesses.total", "{}"), Col("L1", "accesses.l1", "{}"),
                   Col("L2 hits", "accesses.l2", "{}"),
                   Col("L3 (demand) reads", "accesses.l3", "{}"),
                   Col("L2 hit rate", "accesses.l2_hit_rate", "{:.3f}"),
                   Col("precision", "prefetch.precision", "{:.3f}"),
                   Col("sync fetch (measured)", "latency_ns.sync_fetch_mean", "{:.0f}",
                       "{v} ns (p99 *)"),
                   Col("sync fetch (measured)", "latency_ns.sync_fetch_p99", "{:.0f}",
                       "* ns (p99 {v})"),
                   Col("effective ns / access", "latency_ns.effective_mean", "{:.0f}"),
                   Col("prefetch / step (measured, incl. LSTM)", "prefetch.mean_step_ns",
                       opt("{:.1f}", 1e-6), "{v} ms"),
                   Col("pages checked / bad", "check.pages_checked", "{}", "{v} / *"),
                   Col("pages checked / bad", "check.mismatches", "{}", "* / {v}")]),
]

# docs/datapath.md: DMA throughput per simulated DRAM (docs/results/datapath/<dram>.json)
_DMA_JOBS = ("copy DRAM->DRAM 64 KiB", "copy DRAM->DRAM 1 MiB",
             "copy DRAM->DRAM 64 KiB, src+3 dst+5", "copy DRAM->host 64 KiB",
             "decompress page -> host")
REGISTRY += [
    Table("docs/datapath.md", "DMA throughput against the port and DRAM peaks",
          f"docs/results/datapath/{dram}.json", keys=("DMA job",), table=i,
          rows={(job,): f"dma.{j}" for j, job in enumerate(_DMA_JOBS)},
          columns=[Col("cycles", "cycles"),
                   Col("dest B/cycle", "dest_bytes_per_cycle", "{:.2f}"),
                   Col("DRAM B/cycle", "dram_bytes_per_cycle", "{:.2f}")])
    for i, dram in enumerate(("ddr3", "sdr"))
]
REGISTRY += [
    Table(RESULTS, "With the DDR3 model and the leaner issue path",
          "docs/results/replay/timing_ddr3/{workload}.json",
          keys=("workload", "config", "timing"), columns=REPLAY_COLUMNS),
]
REGISTRY += [
    Table(RESULTS, "Layer-ordered speculation and a slot hand that keeps what the host needs",
          "docs/results/replay/layered/{workload}.json",
          keys=("workload", "config", "timing"), columns=REPLAY_COLUMNS),
]
_L3 = "docs/results/gpu/step_times_llama3_8b_h100.json"
REGISTRY += [
    Figures(RESULTS, "With the DDR3 model and the leaner issue path", _L3,
            "SmolLM2 in the same run at {smol} ms against the H200's {h200}): {b1} ms a step at "
            "batch 1 and 512 tokens, {b4k} ms at 4,096",
            {"smol": Val("rows[model=smollm2-135m,batch=1,context=512].step_ms", "{:.3f}"),
             "h200": Val("rows[model=smollm2-135m,dtype=bf16,batch=1,context=512].step_ms",
                         "{:.3f}", "docs/results/gpu/step_times.json"),
             "b1": Val("rows[model=llama3-8b,batch=1,context=512].step_ms", "{:.2f}"),
             "b4k": Val("rows[model=llama3-8b,batch=1,context=4096].step_ms", "{:.2f}")}),
]
_GEN = "docs/results/generate/generate.json"


def _gen(field):
    return f"rows[workload={{workload}},config={{config}}].{field}"


REGISTRY += [
    Table("docs/generate.md", "Codec and page selection on the four workloads", _GEN,
          keys=("workload", "config"),
          columns=[Col("prompt", _gen("prompt_tokens"), "{}"),
                   Col("first divergent token", _gen("first_divergence"),
                       lambda v: "none" if v is None else f"{v}"),
                   Col("ppl plain", _gen("ppl_plain"), "{:.4f}"),
                   Col("ppl device", _gen("ppl_device"), "{:.4f}"),
                   Col("change", _gen("ppl_change"), "{:+.2%}"),
                   Col("tok/s plain", _gen("tokens_per_s_plain"), "{:.1f}"),
                   Col("tok/s device", _gen("tokens_per_s_device"), "{:.1f}"),
                   Col("L2 hit rate", _gen("tiers.l2_hit_rate"), "{:.3f}"),
                   Col("ratio", _gen("compression_ratio"), "{:.3f}"),
                   Col("bad pages", _gen("check.mismatches"), "{}")]),
]
_SW = "docs/results/sweep/"
_SWP = _SW + "predictors.summary.json"


def _pred(field, k):
    return f"replay.rows[workload={{workload}},prefetcher={{predictor}},k={k}].{field}"


REGISTRY += [
    Figures("docs/sweeps.md", "Wall time on this machine", _SW + "scaling.json",
            "{cells} cells: {par} s on {cpus} CPUs, {ser} s one cell at a time ({speedup}x)",
            {"cells": Val("cells", "{}"), "par": Val("runs.parallel.wall_s", "{:,.0f}"),
             "cpus": Val("runs.parallel.cpus", "{}"), "ser": Val("runs.serial.wall_s", "{:,.0f}"),
             "speedup": Val("speedup", "{:.2f}")}),
    Table("docs/sweeps.md", "Predictors on the four workloads", _SWP,
          keys=("workload", "predictor"),
          columns=[Col(f"hit k{k}", _pred("l2_hit_rate", k), "{:.3f}") for k in (4, 8, 16)]
          + [Col(f"wasted MiB k{k}", _pred("wasted_mib", k), "{:.1f}") for k in (4, 8, 16)]),
]
_FZ = "docs/results/reliability/fuzz.json"
REGISTRY += [
    Figures("docs/reliability.md", "Decompressor fuzz in gateware", _FZ,
            "{pages} pages, seed {seed}: {hangs} hangs, {oob} out-of-bounds writes, {verdict} "
            "verdict disagreements, {nbytes} byte-count disagreements, {data} data mismatches "
            "({cycles} simulated cycles, {wall} s)",
            {"pages": Val("pages"), "seed": Val("seed", "{}"), "hangs": Val("hangs"),
             "oob": Val("out_of_bounds_writes"), "verdict": Val("verdict_disagreements"),
             "nbytes": Val("byte_count_disagreements"), "data": Val("data_mismatches"),
             "cycles": Val("cycles"), "wall": Val("wall_s", "{:.0f}")}),
    Table("docs/reliability.md", "Decompressor fuzz in gateware", _FZ, keys=("kind",),
          columns=[Col("pages", "by_kind.{kind}.pages"), Col("ok", "by_kind.{kind}.ok"),
                   Col("corrupt", "by_kind.{kind}.corrupt"),
                   Col("overflow", "by_kind.{kind}.overflow")], table=2),
]

_LF, _DR = "docs/results/reliability/link_faults.json", "docs/results/reliability/device_reset.json"
_LFD = "link_faults.per_direction.{direction}."
_LF_ROWS = [("device cycles", "sim_cycles", "{:,}"), ("step time, mean (ns)", "step_ns_mean", "{:,.0f}"),
            ("demand read, mean (ns)", "sync_fetch_mean_ns", "{:,.0f}"),
            ("demand read, p99 (ns)", "sync_fetch_p99_ns", "{:,.0f}"),
            ("L2 hit rate", "l2_hit_rate", "{:.3f}"), ("late prefetches", "late", "{:,}")]
REGISTRY += [
    Figures("docs/reliability.md", "Link faults", _LF,
            "twice, over the link layer clean and with 1 % of the flits faulted: {inj} faults "
            "injected, {det} detected, {rep} flits replayed, link down: no; {mism} byte "
            "mismatches, bytes read identical (same digest)",
            {"inj": Val("link_faults.injected"), "det": Val("link_faults.detected"),
             "rep": Val("link_faults.flits_replayed"), "mism": Val("byte_mismatches")}),
    Figures("docs/reliability.md", "Link faults", _LF,
            "visible as {rep} flits sent again for {n} faults",
            {"rep": Val("link_faults.per_direction.d2h.recovery.flits_replayed"),
             "n": Val(calc("d2h faults injected", lambda d: sum(
                 d["link_faults"]["per_direction"]["d2h"]["injected"].values())))}),
    Figures("docs/reliability.md", "Link faults", _LF,
            "Recovery cost {cost} % of the device cycles; it shows in the demand-read tail "
            "(p99 +{p99} %), where a replay timeout ({rt} cycles",
            {"cost": Val(change("clean.sim_cycles", "faulted.sim_cycles"), "{:.1f}"),
             "p99": Val(change("clean.sync_fetch_p99_ns", "faulted.sync_fetch_p99_ns"), "{:.0f}"),
             "rt": Val("link_faults.replay_timeout_cycles", "{}")}),
    Table("docs/reliability.md", "Link faults", _LF, keys=("direction",),
          columns=[Col(h, _LFD + p) for h, p in (
              ("dropped", "injected.dropped"), ("duplicated", "injected.duplicated"),
              ("delayed", "injected.delayed"), ("corrupted", "injected.corrupted"),
              ("CRC errors", "detected.crc_errors"), ("sequence gaps", "detected.seq_gaps"),
              ("duplicates dropped", "detected.duplicates"), ("NAKs", "recovery.naks"),
              ("replays", "recovery.replays"), ("timer replays", "recovery.timer_replays"),
              ("flits replayed", "recovery.flits_replayed"))], table=0),
] + [Figures("docs/reliability.md", "Link faults", _LF, f"| {name} | {{a}} | {{b}} |",
             {"a": Val(f"clean.{key}", fmt), "b": Val(f"faulted.{key}", fmt)})
     for name, key, fmt in _LF_ROWS] + [
    Figures("docs/reliability.md", "Device reset mid-run", _DR,
            "reset before step {step}: noticed at cycle {cyc}, {n} pages offloaded again, back "
            "after {rc} cycles; {mism} byte mismatches and the bytes read identical",
            {"step": Val("device_resets.0.step", "{}"), "cyc": Val("device_resets.0.noticed_cycle"),
             "n": Val("device_resets.0.reoffloaded"), "rc": Val("device_resets.0.recovery_cycles"),
             "mism": Val("byte_mismatches")}),
    Figures("docs/reliability.md", "Device reset mid-run", _DR,
            "The reset cost {d} device cycles ({a} without it, {b} with)",
            {"d": Val(diff("clean.sim_cycles", "faulted.sim_cycles")),
             "a": Val("clean.sim_cycles"), "b": Val("faulted.sim_cycles")}),
    Figures("docs/reliability.md", "Device reset mid-run", _DR,
            "The L2 hit rate falls from {a} to {b} over the run",
            {"a": Val("clean.l2_hit_rate", "{:.3f}"), "b": Val("faulted.l2_hit_rate", "{:.3f}")}),
]
