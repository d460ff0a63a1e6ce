"""The figures of docs/bitstreams.md (board reports, the codec's board throughput and the
board-shaped demand-read latency) for scripts/check_doc_figures.py, beside the entries of
doc_figures_registry.py, whose entry types and path helpers these use."""

from doc_figures_registry import (BITSTREAMS, CODEC, CORES, ECPIX5, ECPIX5_48, ULX3S, ULX3S_13,
                                  ULX3S_FIRST, Figures, Val, calc, core, get, same, used)

def report_table(section, source, path="critical_paths.0", row="critical path", ns="{:.1f}"):
    """The two-column summary table of a committed bitstream report."""
    lut, ff, ebr = used("TRELLIS_COMB"), used("TRELLIS_FF"), used("DP16KD")
    return [
        Figures(BITSTREAMS, section, source,
                f"| {row} | {{ns}} ns, {{cells}} logic cells:",
                {"ns": Val(f"{path}.delay_ns", ns), "cells": Val(f"{path}.logic_levels")}),
        Figures(BITSTREAMS, section, source, "**{fmax} MHz",
                {"fmax": Val("sys_clock.achieved_mhz", "{:.2f}")}),
        Figures(BITSTREAMS, section, source, "met, margin +{margin} %**",
                {"margin": Val("sys_clock.margin_pct", "{:.1f}")}),
        Figures(BITSTREAMS, section, source, "| LUT4 sites | {used} / {avail} ({pct} %) |", lut),
        Figures(BITSTREAMS, section, source, "| FF | {used} ({pct} %) |",
                {"used": ff["used"], "pct": ff["pct"]}),
        Figures(BITSTREAMS, section, source, "| EBR | {used} / {avail} ({pct} %) |", ebr),
        Figures(BITSTREAMS, section, source, "{bytes} bytes |", {"bytes": Val("bitstream_bytes")}),
    ]


def board_table(section, source, decompressors="same"):
    """The summary table of a current board report (timing met or not). ``decompressors``:
    "same" (one figure for both) or "both" (the firmware DMA's, then the page DMA's)."""
    lut, ff, ebr, dsp = used("TRELLIS_COMB"), used("TRELLIS_FF"), used("DP16KD"), used("MULT18X18D")
    path = "critical_paths[from=posedge {c},to=posedge {c}]".format(c=CLK[source])
    return [
        Figures(BITSTREAMS, section, source, "| sys_clk | {req} MHz requested",
                {"req": Val("sys_clk_mhz", "{:.0f}")}),
        # (the margin's sign says met or not)
        Figures(BITSTREAMS, section, source, "| **{fmax} MHz: NOT met, margin {margin} %** |",
                {"fmax": Val("sys_clock.achieved_mhz", "{:.2f}"),
                 "margin": Val("sys_clock.margin_pct", "{:+.1f}")}),
        Figures(BITSTREAMS, section, source, "| critical path | {ns} ns, {cells} logic cells:",
                {"ns": Val(f"{path}.delay_ns", "{:.2f}"),
                 "cells": Val(f"{path}.logic_levels")}),
        Figures(BITSTREAMS, section, source, "| LUT4 sites | {used} / {avail} ({pct} %) |", lut),
        Figures(BITSTREAMS, section, source, "| FF | {used} ({pct} %) |",
                {"used": ff["used"], "pct": ff["pct"]}),
        Figures(BITSTREAMS, section, source, "| EBR | {used} / {avail} ({pct} %) |", ebr),
        Figures(BITSTREAMS, section, source, "| DSP | {used} / {avail} ({pct} %) |", dsp),
        Figures(BITSTREAMS, section, source,
                "compressor {comp} LUT / {comp_ff} FF; each decompressor {dec} / {dec_ff}",
                {"comp": core("codec_compressor"), "comp_ff": core("codec_compressor", "ff"),
                 "dec": Val(same("cores[module=codec_decompressor].lut",
                                 "cores[module=page_decompressor].lut"), "{:,}"),
                 "dec_ff": Val(same("cores[module=codec_decompressor].ff",
                                    "cores[module=page_decompressor].ff"), "{:,}")})
        if decompressors == "same" else
        Figures(BITSTREAMS, section, source,
                "compressor {comp} LUT / {comp_ff} FF; decompressors {dec} and {pdec} LUT, "
                "{dec_ff} FF each",
                {"comp": core("codec_compressor"), "comp_ff": core("codec_compressor", "ff"),
                 "dec": core("codec_decompressor"), "pdec": core("page_decompressor"),
                 "dec_ff": Val(same("cores[module=codec_decompressor].ff",
                                    "cores[module=page_decompressor].ff"), "{:,}")}),
        Figures(BITSTREAMS, section, source, "DMA engines {dma} / {page_dma};",
                {"dma": core("dma"), "page_dma": core("page_dma")}),
        Figures(BITSTREAMS, section, source, "total {lut} LUT / {ff} FF |",
                {"lut": Val("total_synth.lut", "{:,}"), "ff": Val("total_synth.ff", "{:,}")}),
        Figures(BITSTREAMS, section, source, "{bytes} bytes |",
                {"bytes": Val("bitstream_bytes", "{:,}")}),
    ]


THROUGHPUT = "docs/results/codec/board_throughput.json"
SDR32 = "docs/results/datapath/sdr32.json"


def _clock(report, key):
    """`sys_clock.<key>` of a committed board report (for figures scaled to its clock):
    achieved_mhz (routed Fmax) or constraint_mhz (what its PLL makes)."""
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / report
    return json.loads(path.read_text())["sys_clock"][key]


def _routed_mhz(report):
    return _clock(report, "achieved_mhz")


def _pll_mhz(report):
    return _clock(report, "constraint_mhz")


BEFORE = "Before the slices"                      # docs/bitstreams.md sections
SLICES = "Register slices between the cores"
FIFOS = "FIFOs at the DMA's destination"
FAST = "Codec cores past 100 MHz, the bridge's memory answer registered"
JOBRST = "The page DMA's job path reset by one register"
JOBRST_ECPIX = "ECPIX-5, 75 MHz, job-path reset register"


def _throughput_at_routed(ulx3s, ecpix5):
    """Codec MB/s at the routed Fmax of two board reports (compressor, decompressor)."""
    fp16 = "rows[core={}].fp16_bytes_per_cycle"
    return {k: _at_routed(fp16.format(c), rep, lambda b, f: b * f)
            for k, c, rep in (("cu", "compressor", ulx3s), ("du", "decompressor", ulx3s),
                              ("ce", "compressor", ecpix5), ("de", "decompressor", ecpix5))}


def _at_routed(key, report, fn):
    return Val(calc(f"{key} at the routed Fmax of {report}",
                    lambda d: fn(get(d, key), _routed_mhz(report))), "{:,.1f}")


def board_builds(sections, reports, prior_label, priors):
    """The two board tables of one build (``sections``: the ULX3S's and ECPIX-5's table
    headings, ``reports`` their report files) and each table's row naming the earlier
    build's routed Fmax (``prior_label``, from ``priors``)."""
    out = []
    for sec, rep in zip(sections, reports):
        out += board_table(sec, rep, decompressors="both")
    out += [Figures(BITSTREAMS, sec, src, f"| {prior_label} | {{before}} MHz routed |",
                    {"before": Val("sys_clock.achieved_mhz", "{:.2f}")})
            for sec, src in zip(sections, priors)]
    return out


def throughput_at_routed(section, text, ulx3s, ecpix5):
    """The codec MB/s of ``text`` at two board reports' routed Fmax, with the clocks as
    {fu} and {fe}."""
    return Figures(BITSTREAMS, section, THROUGHPUT, text, _throughput_at_routed(ulx3s, ecpix5)
                   | {"fu": Val(calc("ULX3S routed", lambda d: _routed_mhz(ulx3s)), "{:.2f}"),
                      "fe": Val(calc("ECPIX-5 routed", lambda d: _routed_mhz(ecpix5)),
                                "{:.2f}")})


ULX3S_A = "docs/bitstreams/ulx3s-acfa062.json"     # 50 MHz before the register slices
ECPIX5_A = "docs/bitstreams/ecpix5-acfa062.json"   # 75 MHz before the register slices
ULX3S_S = "docs/bitstreams/ulx3s-0d1c4f7.json"     # with the register slices
ECPIX5_S = "docs/bitstreams/ecpix5-0d1c4f7.json"
ULX3S_F = "docs/bitstreams/ulx3s-c7bb4cf.json"     # with the FIFOs at the DMA's destination
ECPIX5_F = "docs/bitstreams/ecpix5-c7bb4cf.json"
ECPIX5_C = "docs/bitstreams/ecpix5-654e8ce.json"   # codecs past 100 MHz
ECPIX5_T = "docs/bitstreams/ecpix5-30b71b1.json"   # the tunnel's registered read offset
# the sys_clk net's name in each board report
CLK = {ULX3S: "$glbnet$crg_clkout0", ECPIX5: "$glbnet$sys_clk",
       ULX3S_A: "$glbnet$crg_clkout0", ECPIX5_A: "$glbnet$sys_clk",
       ULX3S_S: "$glbnet$crg_clkout0", ECPIX5_S: "$glbnet$sys_clk",
       ULX3S_F: "$glbnet$crg_clkout0", ECPIX5_F: "$glbnet$sys_clk",
       ECPIX5_C: "$glbnet$sys_clk"}

SYS_CLK = {"req": Val("sys_clk_mhz", "{:.0f}"), "pll": Val("sys_clock.constraint_mhz", "{:.2f}")}
CODEC_CORES = ("codec_compressor", "codec_decompressor", "page_decompressor")


def cores_fmax(codecs, fn=min):
    """fn of the per-core Fmax in ecpix5_cores.json, over the codec cores or over the rest."""
    label = f"{fn.__name__} Fmax of the {'codec' if codecs else 'other'} cores"
    return Val(calc(label, lambda d: fn(r["min_fmax_mhz"] for r in d["rows"]
                                        if (r["core"] in CODEC_CORES) == codecs)), "{:.1f}")


NOW = "The 13 MHz report"         # docs/bitstreams.md: ULX3S, report of main 2c0da38
FIRST = "The first report"        # docs/bitstreams.md: ULX3S, report of a6c641a
ECP = "Earlier: the ECPIX-5 at 48 MHz"   # docs/bitstreams.md: ECPIX-5 report of bcfa3fa


ULX3S_33 = "docs/bitstreams/ulx3s-33mhz.json"     # the same tree at 33 MHz (timing met)

REGISTRY = [
    Figures(BITSTREAMS, "ULX3S at 33 MHz", ULX3S_33, "({wall} s, beside CI)",
            {"wall": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, "ULX3S at 33 MHz", ULX3S_33,
            "The PLL makes {pll} MHz; routed Fmax\n**{fmax} MHz: met, margin +{margin} %**",
            {"pll": Val("sys_clock.constraint_mhz", "{:.2f}"),
             "fmax": Val("sys_clock.achieved_mhz", "{:.2f}"),
             "margin": Val("sys_clock.margin_pct", "{:.1f}")}),
    Figures(BITSTREAMS, "ULX3S at 33 MHz", ULX3S_33,
            "Its critical path ({ns}\nns, {cells} logic cells)",
            {"ns": Val("critical_paths.0.delay_ns", "{:.2f}"),
             "cells": Val("critical_paths.0.logic_levels")}),
    Figures(BITSTREAMS, "ULX3S at 33 MHz", ULX3S_33, "skid buffer; {pct} % of the LUT",
            {"pct": used("TRELLIS_COMB")["pct"]}),
    Figures(BITSTREAMS, "ULX3S at 33 MHz", THROUGHPUT,
            "At {f} MHz the codec cores move {c} MB/s (compressor) and {d} MB/s",
            {"f": Val(calc("ULX3S 33 MHz PLL", lambda d: _pll_mhz(ULX3S_33)), "{:.2f}"),
             "c": Val(calc("compressor at the 33 MHz build's clock", lambda d: get(
                 d, "rows[core=compressor].fp16_bytes_per_cycle") * _pll_mhz(ULX3S_33)), "{:.1f}"),
             "d": Val(calc("decompressor at the 33 MHz build's clock", lambda d: get(
                 d, "rows[core=decompressor].fp16_bytes_per_cycle") * _pll_mhz(ULX3S_33)),
                 "{:.1f}")}),
    # docs/bitstreams.md: board table and the ECPIX-5 per-core Fmax (ecpix5_cores.json)
    *[Figures(BITSTREAMS, "FPGA bitstreams", src, f"{pins} | {{sys}} MHz: NOT met, {{fmax}} MHz routed",
              {"sys": Val("sys_clk_mhz", "{:.0f}"),
               "fmax": Val("sys_clock.achieved_mhz", "{:.2f}")})
      for src, pins in ((ULX3S, "`GENSDRPHY`"), (ECPIX5, "(sys2x = 150 MHz)"))],
    Figures(BITSTREAMS, "What a board build carries", CORES,
            "the compressor reached {comp} MHz out of context on this\n  device, the "
            "decompressors {lo}-{hi} MHz, and every other core {rest} MHz or more",
            {"comp": Val("rows[core=codec_compressor].min_fmax_mhz", "{:.1f}"),
             "lo": Val("rows[core=codec_decompressor].min_fmax_mhz", "{:.1f}"),
             "hi": Val("rows[core=page_decompressor].min_fmax_mhz", "{:.1f}"),
             "rest": cores_fmax(codecs=False)}),
    Figures(BITSTREAMS, "The first 32-bit build", CODEC,
            "kivi_k4v3 now runs at {comp} MHz (compressor) and {dec} MHz\n  (decompressor)",
            {"comp": Val("runs[14].rows[core=compressor,mode=kivi_k4v3].fmax_mhz", "{:.1f}"),
             "dec": Val("runs[14].rows[core=decompressor,mode=kivi_k4v3].fmax_mhz", "{:.1f}")}),

    # docs/bitstreams.md: the reports of acfa062 (issue 22, LiteX-Boards clocks, no slices)
    *board_table("ULX3S at 50 MHz", ULX3S_A),
    *board_table("ECPIX-5 at 75 MHz", ECPIX5_A),
    Figures(BITSTREAMS, BEFORE, ULX3S_A, "beside out-of-context codec "
            "runs: {u} s and", {"u": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, BEFORE, ECPIX5_A, "and\n  {e} s of wall time",
            {"e": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, "ECPIX-5 at 75 MHz", ECPIX5_A, "LiteDRAM {ld}; total",
            {"ld": core("litedram")}),
    Figures(BITSTREAMS, "ULX3S at 50 MHz", ULX3S_A, "ATU {atu}; CPU {cpu}; total",
            {"atu": core("atu"), "cpu": core("VexRiscv")}),
    Figures(BITSTREAMS, BEFORE, THROUGHPUT,
            "the compressor takes {c} B of\nFP16 KV a cycle and the decompressor gives {d} B a cycle",
            {"c": Val("rows[core=compressor].fp16_bytes_per_cycle", "{:.1f}"), "d": Val("rows[core=decompressor].fp16_bytes_per_cycle")}),
    Figures(BITSTREAMS, BEFORE, THROUGHPUT,
            "{cu} and {du} MB/s at the ULX3S's 50 MHz, {ce} and {de} MB/s at",
            {"cu": Val("rows[core=compressor].boards_mb_s.ulx3s", "{:.1f}"),
             "du": Val("rows[core=decompressor].boards_mb_s.ulx3s", "{:.1f}"),
             "ce": Val("rows[core=compressor].boards_mb_s.ecpix5", "{:.1f}"),
             "de": Val("rows[core=decompressor].boards_mb_s.ecpix5", "{:.1f}")}),
    Figures(BITSTREAMS, BEFORE, THROUGHPUT,
            "give {cu} and {du} MB/s on the ULX3S, {ce} and {de} MB/s on the",
            _throughput_at_routed(ULX3S_A, ECPIX5_A)),

    # docs/bitstreams.md: the ECPIX-5 report of 60f71fd (issue 22, the job path's reset)
    *board_table(JOBRST_ECPIX, ECPIX5, decompressors="both"),
    Figures(BITSTREAMS, JOBRST_ECPIX, ECPIX5_C, "| codecs past 100 MHz | {before} MHz routed |",
            {"before": Val("sys_clock.achieved_mhz", "{:.2f}")}),
    Figures(BITSTREAMS, JOBRST, ECPIX5, "{e} s of wall time", {"e": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, JOBRST, ECPIX5_T,
            "fresh clone, {w} s) routed\nat {f} MHz, the worst path now inside the CPU ({ns} ns, "
            "{cells} logic cells",
            {"w": Val("wall_s", "{:,.0f}"), "f": Val("sys_clock.achieved_mhz", "{:.2f}"),
             "ns": Val("critical_paths[from=posedge $glbnet$sys_clk,to=posedge $glbnet$sys_clk]"
                       ".delay_ns", "{:.2f}"),
             "cells": Val("critical_paths[from=posedge $glbnet$sys_clk,to=posedge "
                          "$glbnet$sys_clk].logic_levels")}),
    Figures(BITSTREAMS, JOBRST, THROUGHPUT,
            "At the routed {fe} MHz the codecs move {ce} and {de} MB/s",
            {k: v for k, v in throughput_at_routed(JOBRST, "", ULX3S, ECPIX5).values.items()
             if k in ("ce", "de", "fe")}),

    # docs/bitstreams.md: the reports of 654e8ce (issue 22, codec cores past 100 MHz)
    *board_builds(("ULX3S, 50 MHz, codecs past 100 MHz", "ECPIX-5, 75 MHz, codecs past 100 MHz"),
                  (ULX3S, ECPIX5_C), "with the FIFOs", (ULX3S_F, ECPIX5_F)),
    Figures(BITSTREAMS, FAST, ULX3S, "beside out-of-context codec runs: {u} s and",
            {"u": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, FAST, ECPIX5_C, "and {e} s of wall time.", {"e": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, FAST, ULX3S, "the compressor {a} ->\n{b} LUT",
            {"a": core("codec_compressor", source=ULX3S_F), "b": core("codec_compressor")}),
    throughput_at_routed(FAST, "move {cu} and {du} MB/s at the ULX3S's {fu} MHz and\n{ce} and "
                         "{de} MB/s at the ECPIX-5's {fe} MHz", ULX3S, ECPIX5_C),
    Figures(BITSTREAMS, FAST, SDR32,
            "takes {hit} cycles with a TLB hit and {miss} with a miss",
            {"hit": Val("demand_read.ideal.hit.total", "{:,}"),
             "miss": Val("demand_read.ideal.miss.total", "{:,}")}),
    Figures(BITSTREAMS, FAST, SDR32, "At the ULX3S's routed {f} MHz that is {rh} and {rm} us",
            {"f": Val(calc("ULX3S routed Fmax", lambda d: _routed_mhz(ULX3S)), "{:.2f}"),
             "rh": _at_routed("demand_read.ideal.hit.total", ULX3S, lambda c, f: c / f),
             "rm": _at_routed("demand_read.ideal.miss.total", ULX3S, lambda c, f: c / f)}),
    *[Figures(BITSTREAMS, FAST, src, f"The {name} {verb} {{pct}} % ({{a}} -> {{b}} MHz)",
              {"pct": Val(calc(f"{name}: change of the routed Fmax against {old}",
                               lambda d, o=old, n=src: abs(_routed_mhz(n) / _routed_mhz(o) - 1)
                               * 100), "{:.1f}"),
               "a": Val(calc(f"{old} routed", lambda d, o=old: _routed_mhz(o)), "{:.2f}"),
               "b": Val("sys_clock.achieved_mhz", "{:.2f}")})
      for name, verb, src, old in (("ULX3S", "gained", ULX3S, ULX3S_F),
                                   ("ECPIX-5", "lost", ECPIX5_C, ECPIX5_F))],

    # docs/bitstreams.md: the reports of c7bb4cf (issue 22, FIFOs at the DMA's destination)
    *board_builds(("ULX3S, 50 MHz, with the FIFOs", "ECPIX-5, 75 MHz, with the FIFOs"),
                  (ULX3S_F, ECPIX5_F), "with the slices only", (ULX3S_S, ECPIX5_S)),
    Figures(BITSTREAMS, FIFOS, ULX3S_F, "beside tests and benches: {u} s and",
            {"u": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, FIFOS, ECPIX5_F, "and {e} s of wall time.", {"e": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, FIFOS, THROUGHPUT, "With {c} B a cycle in and {d} B a cycle out",
            {"c": Val("rows[core=compressor].fp16_bytes_per_cycle", "{:.1f}"),
             "d": Val("rows[core=decompressor].fp16_bytes_per_cycle")}),
    throughput_at_routed(FIFOS, "move {cu}\nand {du} MB/s at the ULX3S's {fu} MHz and {ce} and "
                         "{de} MB/s at the ECPIX-5's {fe}\nMHz", ULX3S_F, ECPIX5_F),
    Figures(BITSTREAMS, FIFOS, "docs/results/datapath/sdr32-0d1c4f7.json",
            "(with the slices alone {hit} and {miss}, main",
            {"hit": Val("demand_read.ideal.hit.total", "{:,}"),
             "miss": Val("demand_read.ideal.miss.total", "{:,}")}),
    Figures(BITSTREAMS, FIFOS, SDR32,
            "a `PageRd` of a {b} B kivi_k4v3 page takes {hit}\ncycles with a TLB hit and {miss} "
            "with a miss",
            {"b": Val("compressed_page_bytes", "{:,}"),
             "hit": Val("demand_read.ideal.hit.total", "{:,}"),
             "miss": Val("demand_read.ideal.miss.total", "{:,}")}),
    Figures(BITSTREAMS, FIFOS, SDR32,
            "At the routed {f} MHz that is {rh} and\n{rm} us; at 50 MHz it would be {hit} and "
            "{miss} us",
            {"f": Val(calc("ULX3S routed Fmax", lambda d: _routed_mhz(ULX3S_F)), "{:.2f}"),
             "rh": _at_routed("demand_read.ideal.hit.total", ULX3S_F, lambda c, f: c / f),
             "rm": _at_routed("demand_read.ideal.miss.total", ULX3S_F, lambda c, f: c / f),
             "hit": Val(calc("hit at 50 MHz", lambda d: get(d, "demand_read.ideal.hit.total") / 50),
                        "{:.1f}"),
             "miss": Val(calc("miss at 50 MHz",
                              lambda d: get(d, "demand_read.ideal.miss.total") / 50), "{:.1f}")}),


    # docs/bitstreams.md: the reports of 0d1c4f7 (issue 22, with the register slices)
    *board_builds(("ULX3S, 50 MHz, with the slices", "ECPIX-5, 75 MHz, with the slices"),
                  (ULX3S_S, ECPIX5_S), "before the slices", (ULX3S_A, ECPIX5_A)),
    Figures(BITSTREAMS, SLICES, ULX3S_S, "2-core machine: {u} s and", {"u": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, SLICES, ECPIX5_S, "and {e} s of wall time.", {"e": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, SLICES, THROUGHPUT, "With {c} B a cycle in and {d} B a cycle out",
            {"c": Val("rows[core=compressor].fp16_bytes_per_cycle", "{:.1f}"),
             "d": Val("rows[core=decompressor].fp16_bytes_per_cycle")}),
    throughput_at_routed(SLICES, "move {cu}\nand {du} MB/s at the ULX3S's {fu} MHz and {ce} and "
                         "{de} MB/s at the ECPIX-5's {fe}\nMHz", ULX3S_S, ECPIX5_S),

    # docs/bitstreams.md: ULX3S, the 13 MHz report (main 2c0da38)
    *report_table(NOW, ULX3S_13),
    Figures(BITSTREAMS, NOW, ULX3S_13, "It ran {wall} s of wall time",
            {"wall": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, NOW, ULX3S_13, "| sys_clk | {req} MHz requested; the PLL makes {pll} MHz",
            SYS_CLK),
    Figures(BITSTREAMS, NOW, ULX3S_13, "| DSP | {used} / {avail} ({pct} %) |", used("MULT18X18D")),
    Figures(BITSTREAMS, NOW, ULX3S_13,
            "compressor {comp} LUT + {ebr} EBR (its page buffer); each decompressor {dec}; DMA "
            "engines {dma} / {page_dma}; ATU {atu}; CPU {cpu}; tunnel {tunnel}; bridge {bridge}; "
            "LiteDRAM {litedram}; top {top}; total {total} |",
            {"comp": core("codec_compressor"), "ebr": core("codec_compressor", "ebr"),
             "dec": Val(same("cores[module=codec_decompressor].lut",
                             "cores[module=page_decompressor].lut"), "{:,}"),
             "dma": core("dma"), "page_dma": core("page_dma"), "atu": core("atu"),
             "cpu": core("VexRiscv"), "tunnel": core("tunnel"), "bridge": core("bridge"),
             "litedram": core("litedram"), "top": core("ulx3s"),
             "total": Val("total_synth.lut")}),

    # docs/bitstreams.md: ULX3S, the first report (a6c641a)
    *report_table(FIRST, ULX3S_FIRST),
    Figures(BITSTREAMS, FIRST, ULX3S_FIRST, "{wall} s of wall time",
            {"wall": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, FIRST, ULX3S_FIRST, "**{fmax} MHz at {req} MHz",
            {"fmax": Val("sys_clock.achieved_mhz", "{:.2f}"),
             "req": Val("sys_clock.constraint_mhz", "{:.2f}")}),
    Figures(BITSTREAMS, FIRST, ULX3S_FIRST,
            "compressor {comp} LUT + {ram} LUTRAM (its page buffer); each decompressor {dec}; "
            "DMA engines {dma} / {page_dma}; ATU {atu}; LiteDRAM {litedram}; total {total} |",
            {"comp": core("codec_compressor"), "ram": core("codec_compressor", "lutram"),
             "dec": Val(same("cores[module=codec_decompressor].lut",
                             "cores[module=page_decompressor].lut"), "{:,}"),
             "dma": core("dma"), "page_dma": core("page_dma"), "atu": core("atu"),
             "litedram": core("litedram"), "total": Val("total_synth.lut")}),
    Figures(BITSTREAMS, FIRST, ULX3S_FIRST,
            "the compressor's page buffer moved from {ram} distributed-RAM cells (which take "
            "LUT sites) to {ebr} EBR, the DMA's skid buffer went in, and the design went from "
            "{first} % to {now} % of the LUT sites",
            {"ram": core("codec_compressor", "lutram"),
             "ebr": core("codec_compressor", "ebr", ULX3S_13),
             "first": used("TRELLIS_COMB")["pct"], "now": used("TRELLIS_COMB", ULX3S_13)["pct"]}),

    # docs/bitstreams.md: ECPIX-5 (report of main bcfa3fa) and the per-core Fmax
    *report_table(ECP, ECPIX5_48, "critical_paths[from=posedge $glbnet$sys_clk,"
                               "to=posedge $glbnet$sys_clk]", row="sys critical path",
                  ns="{:.2f}"),
    Figures(BITSTREAMS, ECP, ECPIX5_48, "{wall} s of wall time", {"wall": Val("wall_s", "{:,.0f}")}),
    Figures(BITSTREAMS, ECP, ECPIX5_48, "| sys_clk | {req} MHz requested; the PLL makes {pll} MHz",
            SYS_CLK),
    Figures(BITSTREAMS, ECP, ECPIX5_48,
            "| Fmax codec clock | {fmax} MHz for {req} MHz: met, +{margin} % |",
            {"fmax": Val("clocks[net=$glbnet$board_soc_clkout2].achieved_mhz", "{:.2f}"),
             "req": Val("clocks[net=$glbnet$board_soc_clkout2].constraint_mhz", "{:.2f}"),
             "margin": Val("clocks[net=$glbnet$board_soc_clkout2].margin_pct", "{:.1f}")}),
    Figures(BITSTREAMS, ECP, ECPIX5_48, "| codec critical path | {ns} ns, {cells} logic cells:",
            {"ns": Val("critical_paths[from=posedge $glbnet$board_soc_clkout2,"
                       "to=posedge $glbnet$board_soc_clkout2].delay_ns", "{:.2f}"),
             "cells": Val("critical_paths[from=posedge $glbnet$board_soc_clkout2,"
                          "to=posedge $glbnet$board_soc_clkout2].logic_levels")}),
    Figures(BITSTREAMS, ECP, ECPIX5_48, "| DSP | {used} / {avail} ({pct} %) |", used("MULT18X18D")),
    Figures(BITSTREAMS, ECP, ECPIX5_48,
            "compressor {comp} LUT + {ebr} EBR; decompressors {dec} / {page_dec}; DMA engines "
            "{dma} / {page_dma}; LiteDRAM {litedram}; ATU {atu}; CPU {cpu}; tunnel {tunnel}; "
            "bridge {bridge}; top {top}; total {total} |",
            {"comp": core("codec_compressor"), "ebr": core("codec_compressor", "ebr"),
             "dec": core("codec_decompressor"), "page_dec": core("page_decompressor"),
             "dma": core("dma"), "page_dma": core("page_dma"), "litedram": core("litedram"),
             "atu": core("atu"), "cpu": core("VexRiscv"), "tunnel": core("tunnel"),
             "bridge": core("bridge"), "top": core("ecpix5"), "total": Val("total_synth.lut")}),
    Figures(BITSTREAMS, ECP, CORES,
            "Every core alone reaches {rest} MHz or more on this device",
            {"rest": cores_fmax(codecs=False)}),
    Figures(BITSTREAMS, ECP, CORES,
            "ATU {atu}, page DMA {page_dma}, DMA {dma}, LiteDRAM {litedram} MHz. The codecs "
            "reach {lo}-{hi} MHz on their own clock",
            {k: Val(f"rows[core={k}].min_fmax_mhz", "{:.1f}")
             for k in ("atu", "page_dma", "dma", "litedram")}
            | {"lo": cores_fmax(codecs=True), "hi": cores_fmax(codecs=True, fn=max)}),
    Figures(BITSTREAMS, ECP, ECPIX5_48,
            "({ddr3} LUTs in the ECPIX-5 report against {sdr} in the ULX3S one)",
            {"ddr3": core("litedram"), "sdr": core("litedram", source=ULX3S_13)}),
    Figures(BITSTREAMS, ECP, ULX3S_FIRST,
            "the firmware DMA went from {dma0} to {dma1} FFs and the page DMA from {pdma0} to "
            "{pdma1}.",
            {"dma0": core("dma", "ff"), "dma1": core("dma", "ff", ULX3S_13),
             "pdma0": core("page_dma", "ff"), "pdma1": core("page_dma", "ff", ULX3S_13)}),
    Figures(BITSTREAMS, ECP, ECPIX5_48, "The codec clock has {margin} % in hand",
            {"margin": Val("clocks[net=$glbnet$board_soc_clkout2].margin_pct", "{:.1f}")}),
    Figures(BITSTREAMS, ECP, ECPIX5_48, "The decompressor's {ns} ns output path",
            {"ns": Val("critical_paths.0.delay_ns", "{:.2f}")}),
    Figures(BITSTREAMS, ECP, ECPIX5_48, "({dec} and {page_dec} LUTs in the report above)",
            {"dec": core("codec_decompressor"), "page_dec": core("page_decompressor")}),
    Figures(BITSTREAMS, "Compared with the paper's Table 1", ULX3S,
            "takes {ulx3s} % of an ECP5-85F's LUT sites on the ULX3S and {ecpix5} % on the ECPIX-5",
            {"ulx3s": used("TRELLIS_COMB")["pct"], "ecpix5": used("TRELLIS_COMB", ECPIX5)["pct"]}),
]
