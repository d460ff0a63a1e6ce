"""The figures the docs cite equal the committed JSON they come from
(scripts/check_doc_figures.py, its entries in scripts/doc_figures_registry.py), and the
check fails when a doc figure is changed."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_doc_figures.py"
CODEC = "docs/codec.md"

# the script loads its registry (scripts/doc_figures_registry.py) by path itself
_spec = importlib.util.spec_from_file_location("check_doc_figures", SCRIPT)
cdf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cdf)


def _check(doc, old, new):
    """Problems found in `doc` after replacing `old` (once in the doc) with `new`."""
    text = (ROOT / doc).read_text()
    assert text.count(old) == 1, old
    return cdf.Checker(texts={doc: text.replace(old, new)}).run(cdf.REGISTRY, [doc])


def test_docs_match_committed_json():
    checker = cdf.Checker()
    errors = checker.run(cdf.REGISTRY)
    assert not errors, "\n".join(errors)
    docs = {doc for doc, *_ in checker.checked}
    assert {"docs/bitstreams.md", CODEC} <= docs
    assert "gateware/codec/README.md" not in docs  # its results moved to docs/codec.md


def test_changed_figure_fails_with_doc_and_json_values():
    errors = _check("docs/bitstreams.md", "| LUT4 sites | 64,052 / 83,640 (76.6 %) |",
                    "| LUT4 sites | 64,053 / 83,640 (76.6 %) |")
    assert len(errors) == 1, errors
    assert all(s in errors[0] for s in ("docs/bitstreams.md", "'64,053'", "'64,052'",
                                        "docs/bitstreams/ulx3s-2c0da38.json",
                                        "utilization_pnr.TRELLIS_COMB.used"))


def test_changed_figure_of_a_replaced_report_fails():
    """The first ULX3S report (ulx3s.json as committed in a6c641a) is kept beside the current one."""
    errors = _check("docs/bitstreams.md", "**15.86 MHz at 12.90 MHz",
                    "**15.87 MHz at 12.90 MHz")
    assert errors and all("ulx3s-a6c641a.json" in e and "'15.86'" in e for e in errors)


def test_changed_table_cell_fails():
    errors = _check(CODEC,
                    "| 9,648 (11.5 %) | **113.0 MHz** |", "| 9,648 (11.5 %) | **113.1 MHz** |")
    assert len(errors) == 1, errors
    assert all(s in errors[0] for s in ("('KVDecompressor', 'kivi_k4v3')", "'Fmax'", "'113.1'",
                                        "'113.0'", "codec_ecp5.json"))


def test_removed_figure_and_unregistered_row_fail():
    errors = _check("docs/bitstreams.md", "| FF | 26,247 (31.4 %) |\n", "")
    assert len(errors) == 1 and "found 0 times" in errors[0], errors
    errors = _check(CODEC, "| KVDecompressor | kivi_n10v9 |", "| KVDecompressor | kivi_n11v9 |")
    assert len(errors) == 2, errors
    assert "not in the registry" in " ".join(errors) and "is missing" in " ".join(errors)


def test_table_entry_with_one_json_per_row_key(tmp_path):
    """A table checked against one JSON file per workload is one entry (as for a replay
    table: rows keyed by workload and config)."""
    (tmp_path / "doc.md").write_text(
        "# Results\n\n## Four workloads\n\n"
        "| workload | config | hit rate % | stall (ms) |\n| --- | --- | --- | --- |\n"
        "| chatbot | lstm | 91.0 | 1.25 |\n| qa | lstm | 81.1 | 2.50 |\n")
    for w, hit, stall in (("chatbot", 0.9101, 1.25), ("qa", 0.8114, 2.5)):
        (tmp_path / f"{w}.json").write_text(json.dumps(
            {"configs": [{"name": "none", "hit_rate": 0.3, "stall_ms": 9.0},
                         {"name": "lstm", "hit_rate": hit, "stall_ms": stall}]}))
    entry = cdf.Table("doc.md", "Four workloads", "{workload}.json",
                      keys=("workload", "config"),
                      columns=[cdf.Col("hit rate %", "configs[name={config}].hit_rate",
                                       cdf.percent(1)),
                               cdf.Col("stall (ms)", "configs[name={config}].stall_ms",
                                       "{:.2f}")])
    checker = cdf.Checker(root=tmp_path)
    assert checker.run([entry]) == [] and len(checker.checked) == 4
    (tmp_path / "qa.json").write_text(json.dumps(
        {"configs": [{"name": "lstm", "hit_rate": 0.8, "stall_ms": 2.5}]}))
    errors = cdf.Checker(root=tmp_path).run([entry])
    assert len(errors) == 1 and "'81.1'" in errors[0] and "'80.0'" in errors[0], errors


def test_help():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "REGISTRY" in out and "--list" in out
