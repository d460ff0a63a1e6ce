#!/usr/bin/env python3
"""Check that the figures the docs cite equal the committed JSON they come from.

Each entry of REGISTRY (in scripts/doc_figures_registry.py) says where a figure is in a
markdown doc, which committed JSON file holds it, where in that file, and how the doc
writes it. The doc's text is compared, as a string, with the JSON value formatted that way,
so the rounding is part of the entry. A difference, a figure an entry cannot find, or a
table row that no entry covers is reported with the doc, the figure, the doc's value and
the JSON's value, and the exit status is 1.

There are two kinds of entry:

  Figures(doc, section, source, template, values)
      `template` is literal doc text with {name} placeholders for numbers; any run of
      spaces in it also matches a line break. It must match exactly once in the doc's
      section: the lines under the one heading that contains `section`, up to the next
      heading of the same or a higher level. values[name] is a Val(path, fmt, source):
      the number in the doc must equal fmt(value at `path` in the JSON).
  Table(doc, section, source, keys, columns, rows=None, table=0)
      every row of the `table`-th markdown table of the section. The row's cells under
      the `keys` headers name it. When `rows` is given it maps each row's key cells to a
      JSON path of the row's record: every row must be listed, and None skips a row.
      Without `rows`, the record is the whole file. `source` and the column paths may
      contain {header} placeholders, filled with the row's key cells. Each Col(header,
      path, fmt, pattern) checks the cell under `header`, or, with `pattern` (the whole
      cell as literal text with one {v} and * for any text), the number at {v} in it.

Sources are JSON files (or JSON Lines files, .jsonl: a list of the lines' records), as paths
from the repository root. JSON paths are dot-separated keys
and list indexes (a key ending in "?" is optional: absent, the value is None) ("clocks.0.achieved_mhz" or "clocks[0].achieved_mhz"); "cores[module=dma]"
picks the one list element whose fields have those values (several conditions are
separated by commas; a dotted field such as "[config.label=lstm]" looks into nested
records). A path can also be a function of the loaded JSON: `share`, `change`,
`diff`, `same`, or any `calc(label, fn)`. A fmt is a format string ("{:,}" by default,
"{:.1f}", ...) or a function of the value (`percent`).

Adding a markdown table checked against a JSON file takes one entry in REGISTRY. For
example, a replay table with one JSON file per workload:

    Table("docs/RESULTS.md", "Four workloads", "docs/replay/{workload}.json",
          keys=("workload", "config"),
          columns=[Col("hit rate %", "configs[name={config}].hit_rate", percent(1)),
                   Col("stall (ms)", "configs[name={config}].stall_ms", "{:.2f}")])

    python scripts/check_doc_figures.py            # exit 1 on any mismatch
    python scripts/check_doc_figures.py --list     # also print every figure checked
"""

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_sibling(name):
    """scripts/<name>.py as a module, loaded by its path: this script runs as
    `python scripts/check_doc_figures.py` and is also loaded by path from the tests, where
    scripts/ is not on sys.path."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


_registry = _load_sibling("doc_figures_registry")
# the entry types and path helpers, also for callers that build their own entries
Val, Figures, Col, Table = _registry.Val, _registry.Figures, _registry.Col, _registry.Table
get, calc, percent = _registry.get, _registry.calc, _registry.percent
share, change, diff, same = _registry.share, _registry.change, _registry.diff, _registry.same
REGISTRY = _registry.REGISTRY + _load_sibling("doc_figures_bitstreams").REGISTRY


def fmt_value(fmt, v):
    return fmt(v) if callable(fmt) else fmt.format(v)


# --- markdown -------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?|-"  # "-": no value (e.g. a precision of nothing)


def section_text(text, section):
    """The lines under the one heading containing `section` (to the next heading of its level
    or higher); ValueError unless exactly one heading contains it."""
    lines, heads, fenced = text.splitlines(), [], False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        m = not fenced and _HEADING.match(line)
        if m:
            heads.append((i, len(m.group(1)), m.group(2)))
    found = [h for h in heads if section in h[2]]
    if len(found) != 1:
        raise ValueError(f"{len(found)} headings contain {section!r}, not 1")
    start, level, _ = found[0]
    end = next((i for i, lv, _ in heads if i > start and lv <= level), len(lines))
    return "\n".join(lines[start + 1:end])


def template_regex(template, wildcard=False):
    """Literal text with {name} placeholders -> regex with a named number group per name;
    a run of spaces matches any whitespace, and with `wildcard` a * matches any text."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out.append(re.escape(template[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>{_NUMBER})")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    regex = re.sub(r"(\\ )+", r"\\s+", "".join(out))
    return regex.replace(r"\*", ".*?") if wildcard else regex


def clean(cell):
    return cell.replace("**", "").replace("`", "").strip()


def tables(text):
    """Every markdown table in `text` as (header cells, rows of cells)."""
    blocks, cur = [], []
    for line in text.splitlines() + [""]:
        if line.lstrip().startswith("|"):
            cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif cur:
            blocks.append(cur)
            cur = []
    return [(b[0], b[2:]) for b in blocks if len(b) >= 2]


# --- checking -------------------------------------------------------------------------------

class Checker:
    def __init__(self, root=ROOT, texts=None):
        self.root, self.texts, self._json = Path(root), dict(texts or {}), {}
        self.errors, self.checked = [], []

    def doc(self, name):
        if name not in self.texts:
            self.texts[name] = (self.root / name).read_text()
        return self.texts[name]

    def json(self, source):
        if source not in self._json:
            text = (self.root / source).read_text()
            self._json[source] = ([json.loads(x) for x in text.splitlines() if x.strip()]
                                  if source.endswith(".jsonl") else json.loads(text))
        return self._json[source]

    def compare(self, doc, what, doc_value, source, path, fmt, record=None, record_path=None):
        label = path if isinstance(path, str) else getattr(path, "label", "function")
        label = f"{record_path}.{label}" if record_path else label
        try:
            data = self.json(source) if record is None else record
            want = fmt_value(fmt, get(data, path))
        except (KeyError, IndexError, ValueError, TypeError, OSError) as e:
            self.errors.append(f"{doc}: {what}: doc has {doc_value!r}; {source} {label}: {e}")
            return
        self.checked.append((doc, what, doc_value, source, label))
        if doc_value != want:
            self.errors.append(f"{doc}: {what}: doc has {doc_value!r}, "
                               f"{source} {label} gives {want!r}")

    def figures(self, e):
        where = f"{e.section!r} / {e.template!r}"
        try:
            text = section_text(self.doc(e.doc), e.section)
        except ValueError as err:
            self.errors.append(f"{e.doc}: {where}: {err}")
            return
        found = list(re.finditer(template_regex(e.template), text))
        if len(found) != 1:
            self.errors.append(f"{e.doc}: {where}: the text is found {len(found)} times, not "
                               "once (doc changed? update scripts/doc_figures_registry.py)")
            return
        groups = found[0].groupdict()
        for name, v in e.values.items():
            what = f"{e.section!r}, {{{name}}} in {e.template!r}"
            if name not in groups:
                self.errors.append(f"{e.doc}: {what}: the template has no {{{name}}}")
                continue
            self.compare(e.doc, what, groups[name], v.source or e.source, v.path, v.fmt)

    def table(self, e):
        try:
            header, rows = tables(section_text(self.doc(e.doc), e.section))[e.table]
        except (ValueError, IndexError) as err:
            self.errors.append(f"{e.doc}: table {e.table} under {e.section!r}: {err!r}")
            return
        where = f"{e.doc}: table {e.table} under {e.section!r}"
        missing = [h for h in (*e.keys, *(c.header for c in e.columns)) if h not in header]
        if missing:
            self.errors.append(f"{where}: no column {missing} in {header}")
            return
        seen = set()
        for cells in rows:
            row = dict(zip(header, cells))
            key = tuple(clean(row.get(k, "")) for k in e.keys)
            fill = dict(zip(e.keys, key))
            seen.add(key)
            if e.rows is not None and key not in e.rows:
                self.errors.append(f"{where}: row {key} is not in the registry "
                                   "(scripts/doc_figures_registry.py)")
                continue
            record_path = None if e.rows is None else e.rows[key]
            if e.rows is not None and record_path is None:
                continue
            source = e.source.format_map(fill)
            record = None
            if record_path is not None:
                try:
                    record = get(self.json(source), record_path)
                except (KeyError, IndexError, ValueError, OSError) as err:
                    self.errors.append(f"{where}: row {key}: {source} {record_path}: {err}")
                    continue
            for c in e.columns:
                what = f"table under {e.section!r}, row {key}, column {c.header!r}"
                cell = clean(row.get(c.header, ""))
                if c.pattern:
                    m = re.fullmatch(template_regex(c.pattern, wildcard=True), cell)
                    cell = m.group("v") if m else f"(no {c.pattern!r} in {cell!r})"
                path = c.path.format_map(fill) if isinstance(c.path, str) else c.path
                self.compare(e.doc, what, cell, source, path, c.fmt, record, record_path)
        for key in set(e.rows or ()) - seen:
            self.errors.append(f"{where}: row {key} is missing")

    def run(self, registry, docs=None):
        """Check every entry (of `docs` only, if given); the list of problems."""
        for e in registry:
            if docs and e.doc not in docs:
                continue
            (self.figures if isinstance(e, Figures) else self.table)(e)
        return self.errors

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="print every figure checked")
    p.add_argument("--doc", action="append",
                   help="check only this doc (repeatable), e.g. docs/bitstreams.md")
    args = p.parse_args(argv)
    c = Checker()
    errors = c.run(REGISTRY, args.doc)
    if args.list:
        for doc, what, value, source, path in c.checked:
            print(f"{doc}: {what}: {value} <- {source} {path}")
    for e in errors:
        print("MISMATCH " + e)
    print(f"{len(c.checked)} figures checked, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
