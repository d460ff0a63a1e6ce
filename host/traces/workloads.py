"""The four trace workloads (chatbot, summarization, code generation, QA) and `make traces`.

Shaped after the CXL-SpecKV paper's workloads, with lengths scaled to a 2-core CPU:

============== ====== ====== =====================================================
workload       prompt  gen   shape
============== ====== ====== =====================================================
chatbot          192   256   short user turn, long reply
summarization   1024   128   long document, short summary
codegen          384   384   code context, long code output
qa              1536    64   long document + question, short answer
============== ====== ====== =====================================================

Every prompt is cut from real text this project did not write, present on a fresh Debian
machine (``/usr/share/common-licenses`` is shipped by the essential package base-files)
or inside a pinned pip package of this project (tqdm==4.70.1 from requirements.txt).

    python -m host.traces.workloads --out build/traces            # full set + SHA256SUMS + summary
    python -m host.traces.workloads --mini --out traces            # the small bundled traces
    python -m host.traces.workloads --out build/traces --check traces/SHA256SUMS.full
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import host.traces.model  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
from host.traces.capture import DEFAULT_K, DEFAULT_WINDOW, format_table, run_capture, summary_row


@dataclass(frozen=True)
class TextSource:
    """A real text file: a Debian path, or a file inside an installed pip distribution."""

    kind: str  # "debian" or "pypi"
    where: str  # absolute path (debian) or distribution name (pypi)
    file: str = ""  # path inside the distribution (pypi)

    def resolve(self) -> Path:
        if self.kind == "debian":
            p = Path(self.where)
        elif self.kind == "pypi":
            dist = importlib.metadata.distribution(self.where)
            p = Path(dist.locate_file(self.file))
        else:
            raise ValueError(self.kind)
        if not p.is_file():
            raise FileNotFoundError(f"workload source {self.label()} not found at {p}")
        return p

    def label(self) -> str:
        if self.kind == "debian":
            return f"Debian {self.where}"
        try:
            v = importlib.metadata.version(self.where)
        except importlib.metadata.PackageNotFoundError:
            v = "?"
        return f"PyPI {self.where}=={v}: {self.file}"


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    source: TextSource
    prompt_tokens: int
    gen_tokens: int
    instruction: str = ""
    question: str = ""
    anchor: str = ""  # the document cut starts at the first occurrence of this string
    k: int = DEFAULT_K
    window: int = DEFAULT_WINDOW
    store_queries: bool = True
    extra: dict = field(default_factory=dict)

    def meta(self) -> dict:
        return {"name": self.name, "description": self.description, "sources": [self.source.label()],
                "anchor": self.anchor, "paper_analogue": self.extra.get("paper_analogue", self.name)}


APACHE = TextSource("debian", "/usr/share/common-licenses/Apache-2.0")
GPL3 = TextSource("debian", "/usr/share/common-licenses/GPL-3")
MPL2 = TextSource("debian", "/usr/share/common-licenses/MPL-2.0")
TQDM = TextSource("pypi", "tqdm", "tqdm/std.py")

WORKLOADS = {
    w.name: w for w in [
        Workload("chatbot", "chat turn: a user pastes a license clause and asks what it means",
                 APACHE, 192, 256,
                 instruction="A contributor to my open-source project sent me this part of a license. "
                             "What does it mean for us, in plain words?",
                 anchor="4. Redistribution."),
        Workload("summarization", "long document, short summary", GPL3, 1024, 128,
                 instruction="Summarize the following document.", anchor="Preamble"),
        Workload("codegen", "code context, long code output", TQDM, 384, 384,
                 instruction="Here is part of a Python module. Write pytest unit tests for it.",
                 anchor="class Bar:"),
        Workload("qa", "long document and a question, short answer", MPL2, 1536, 64,
                 instruction="Read the license below and answer the question after it.",
                 question="Question: what must someone do when they distribute the software in "
                          "executable form? Answer briefly.",
                 anchor="1. Definitions"),
    ]
}

# Small traces bundled in git (traces/): 80 tokens = 5 full pages per (layer, KV head),
# no stored queries, k/window small enough that the sparse mode actually drops pages.
MINI = {
    "mini-chatbot": Workload("mini-chatbot", "bundled miniature of chatbot", APACHE, 48, 32,
                             instruction="What does this license text mean?",
                             anchor="4. Redistribution.", k=1, window=16, store_queries=False,
                             extra={"paper_analogue": "chatbot"}),
    "mini-codegen": Workload("mini-codegen", "bundled miniature of codegen", TQDM, 48, 32,
                             instruction="Write tests for this Python code.",
                             anchor="class Bar:", k=1, window=16, store_queries=False,
                             extra={"paper_analogue": "codegen"}),
    # The replay demo and tests: the full traces' window (64 tokens = the predictors' 4 L1
    # pages) with enough pages outside it (8-9 per (layer, KV head)) that prediction matters.
    "mini-replay": Workload("mini-replay", "bundled replay demo: a short chatbot", APACHE, 192, 24,
                            instruction="What does this license text mean?",
                            anchor="4. Redistribution.", k=4, window=64, store_queries=False,
                            extra={"paper_analogue": "chatbot"}),
}


def source_text(w: Workload):
    """(path, text, character offset of the document cut) of a workload."""
    path = w.source.resolve()
    text = path.read_text(encoding="utf-8")
    offset = text.find(w.anchor) if w.anchor else 0
    if offset < 0:
        raise ValueError(f"{w.name}: anchor {w.anchor!r} not found in {path}")
    return path, text, offset


def prompt_ids(w: Workload, tokenizer, prompt_tokens: int | None = None):
    """The workload's prompt (chat template, instruction, document cut, question) as token
    ids, ``prompt_tokens`` long (default: the workload's); what its trace starts from."""
    from host.traces.capture import build_prompt
    _, text, offset = source_text(w)
    return build_prompt(tokenizer, text, prompt_tokens or w.prompt_tokens, w.instruction,
                        w.question, True, offset)[0]


def capture_workload(w: Workload, out_dir: Path, model_and_tokenizer=None, progress: bool = True,
                     threads: int = 2):
    path, _, offset = source_text(w)
    out = out_dir / f"{w.name}.safetensors"
    sha, meta, stats, _ = run_capture(
        path, out, w.prompt_tokens, w.gen_tokens, instruction=w.instruction, question=w.question,
        chat=True, char_offset=offset, k=w.k, window=w.window, store_queries=w.store_queries,
        progress=progress, threads=threads, workload=w.meta(), source_label=w.source.label(),
        model_and_tokenizer=model_and_tokenizer)
    return out, sha, meta, stats


def markdown_table(rows) -> str:
    head = ("| workload | prompt + gen tokens | pages (L x H x P) | trace size | dense reads/step "
            "| sparse reads/step (k, window) | mean attention mass kept | decode tok/s |")
    lines = [head, "|" + " --- |" * 8]
    for r in rows:
        lines.append(f"| {r['name']} | {r['prompt']} + {r['gen']} = {r['tokens']} | {r['pages']} "
                     f"| {r['size_MB']:.1f} MB | {r['dense']:.0f} | {r['sparse']:.0f} ({r['k']}, {r['window']}) "
                     f"| {r['mass']:.3f} | {r['tok_s']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="speckv-workloads",
        description="Capture the workload trace set deterministically (same inputs -> byte-identical "
                    "files) and write SHA256SUMS and summary.json/summary.md beside them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("build/traces"), help="output directory")
    ap.add_argument("--mini", action="store_true", help="capture the small bundled traces instead")
    ap.add_argument("--only", nargs="*", default=None, help="capture only these workloads")
    ap.add_argument("--check", type=Path, default=None,
                    help="SHA256SUMS file to compare against (exit 1 on any difference)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    table = MINI if args.mini else WORKLOADS
    names = args.only or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(unknown)}; choose from {', '.join(table)}")
    want = None
    if args.check is not None:  # read before anything is (re)written: --check may name --out/SHA256SUMS
        want = dict(line.split()[::-1] for line in args.check.read_text().splitlines() if line.strip())
    from host.traces.model import load_model

    t0 = time.perf_counter()
    mt = load_model(threads=args.threads)
    print(f"model loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, sums, md_rows = [], [], []
    for n in names:
        w = table[n]
        out, sha, meta, stats = capture_workload(w, args.out, mt, progress=not args.no_progress,
                                                 threads=args.threads)
        rows.append(summary_row(n, out, meta, stats, sha))
        sums.append(f"{sha}  {out.name}")
        md_rows.append({"name": n, "prompt": meta["prompt_tokens"], "gen": meta["gen_tokens"],
                        "tokens": meta["total_tokens"],
                        "pages": f"{meta['model']['num_hidden_layers']} x {meta['model']['num_key_value_heads']}"
                                 f" x {meta['n_pages']} = {rows[-1]['pages']}",
                        "size_MB": out.stat().st_size / 1e6,
                        "dense": rows[-1]["reads/step dense"], "sparse": rows[-1]["reads/step sparse"],
                        "k": w.k, "window": w.window, "mass": meta["sparse"]["mean_mass_kept"],
                        "tok_s": stats["decode_tok_s"], "prefill_tok_s": stats["prefill_tok_s"],
                        "sha256": sha, "sources": meta["workload"]["sources"]})
        print(f"{n}: {meta['total_tokens']} tokens, prefill {stats['prefill_tok_s']:.0f} tok/s, "
              f"decode {stats['decode_tok_s']:.1f} tok/s, sha256 {sha}", flush=True)
    print(format_table(rows))
    if args.only is None:
        (args.out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
        if not args.mini:
            (args.out / "summary.json").write_text(json.dumps(md_rows, indent=2) + "\n")
            (args.out / "summary.md").write_text(markdown_table(md_rows) + "\n")
    if want is not None:
        bad = [f"{s.split()[1]}: {s.split()[0]} != expected {want.get(s.split()[1])}"
               for s in sums if want.get(s.split()[1]) != s.split()[0]]
        if bad:
            print("DIFFERENT from " + str(args.check) + ":\n  " + "\n  ".join(bad))
            return 1
        print(f"all {len(sums)} traces byte-identical to {args.check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
