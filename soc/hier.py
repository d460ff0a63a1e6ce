"""Keep chosen Migen submodules as their own Verilog modules.

Migen (and LiteX on top of it) writes a design as one flat Verilog module, so a synthesis
report cannot say how much of the FPGA each core uses. For a board build we take the cores
we want to measure out of the flat design:

1. ``detach(module)`` before the SoC is finalized: the core's fragment is built on its own,
   and Migen then leaves it out of its parent (a submodule whose fragment was already taken is
   not merged again).
2. ``instantiate(platform, fragment, build_dir)`` when the top-level Verilog is generated:
   every detached core becomes a Verilog module of its own whose ports are exactly the
   signals it shares with the rest of the design (the top and the other detached cores), its
   clock domains become clock/reset ports, and an ``Instance`` of it is added to the top.
   Cores are siblings under the top; signals between two detached cores are top-level wires.

The logic is the same (the same statements, the same signals), only the Verilog hierarchy
differs; synthesis with ``keep_hierarchy`` on these modules then reports each one.
"""

from pathlib import Path

from migen import ClockDomain, ClockSignal, Instance, ResetSignal
from migen.fhdl.tools import list_clock_domains, list_signals, list_special_ios, list_targets


def strip_hierarchy_comment(text):
    """Remove the "Hierarchy" comment block LiteX writes into every Verilog file (the whole
    SoC's module tree, in an order that varies from run to run): the Verilog of the same
    design is then the same text, so content-keyed caches (Verilator models) hit."""
    out, skip = [], False
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("// Hierarchy"):
            skip = True
            if out and out[-1].startswith("//---"):
                out.pop()
            continue
        if skip:
            if line.startswith("*/"):
                skip = False
            continue
        out.append(line)
    return "".join(out)


def strip_hierarchy_comment_file(path):
    path = Path(path)
    path.write_text(strip_hierarchy_comment(path.read_text()))


class Detached:
    def __init__(self, name, module):
        self.name = name
        self.module = module
        self.fragment = module.get_fragment()  # marks it: the parent will not merge it


def _signals(f):
    return list_signals(f) | list_special_ios(f, ins=True, outs=True, inouts=True)


def _outputs(f):
    return list_targets(f) | list_special_ios(f, ins=False, outs=True, inouts=True)


def instantiate(platform, top, detached, build_dir):
    """Convert every detached core to ``<build_dir>/<name>.v`` (module ``<name>``) and add its
    Instance to the ``top`` fragment. Returns [(name, path)] of the written files."""
    build_dir = Path(build_dir)
    # Signals each fragment references, computed once (before conversion lowers anything).
    refs = {d.name: _signals(d.fragment) for d in detached}
    top_refs = _signals(top)
    written = []
    for d in detached:
        f = d.fragment
        others = set(top_refs)
        for o in detached:
            if o is not d:
                others |= refs[o.name]
        ports = refs[d.name] & others
        outs = _outputs(f)
        domains = sorted(list_clock_domains(f))
        clocks = []
        for cd_name in domains:
            cd = ClockDomain(cd_name)
            f.clock_domains.append(cd)
            clocks.append((cd_name, cd))
        ios = set(ports) | {cd.clk for _, cd in clocks} | {cd.rst for _, cd in clocks}
        # The converter names ports after their Python attribute (it sets name_override);
        # keep the top's names unchanged.
        saved = {s: s.name_override for s in ios}
        try:
            out = platform.get_verilog(f, name=d.name, ios=ios)
            names = {s: out.ns.get_name(s) for s in ios}
        finally:
            for s, n in saved.items():
                s.name_override = n
        path = build_dir / f"{d.name}.v"
        path.write_text(strip_hierarchy_comment(out.main_source))
        for fname, content in out.data_files.items():
            (build_dir / fname).write_text(content)
        items = []
        for cd_name, cd in clocks:
            items.append(Instance.Input(names[cd.clk], ClockSignal(cd_name)))
            items.append(Instance.Input(names[cd.rst], ResetSignal(cd_name)))
        for s in sorted(ports, key=lambda s: s.duid):
            kind = Instance.Output if s in outs else Instance.Input
            items.append(kind(names[s], s))
        top.specials.add(Instance(d.name, *items, name=d.name))
        written.append((d.name, path))
    return written
