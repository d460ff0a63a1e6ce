"""Live generation through SpecKVCache on the model backend (host/generate/): the device
path loses nothing with the raw codec and dense selection (tokens and log-likelihoods equal
to the plain cache's, bit for bit), sparse selection reads what Quest selects, and a new
user's mistakes get messages naming the problem. The rtl backend: test_generate_rtl.py."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from host.generate.cache import GenerateError, SpecKVCache, check_capacity
from host.generate.cli import main as cli_main
from host.generate.run import GenOptions, first_divergence, generate, score
from host.traces.model import ModelError, load_model
from tests.generate_kit import PROMPT, smol16, tiny_llama, tiny_llama_dir, write_model

RAW_DENSE = GenOptions(max_new_tokens=24, codec="raw", selection="dense", l1_pages=0,
                       stop_at_eos=False)


def _ids(tok, text=PROMPT):
    return tok(text, return_tensors="pt").input_ids


@pytest.mark.parametrize("which", ["smollm2", "tiny-llama-hd128"])
def test_raw_dense_generation_equals_the_plain_cache(which):
    """Every full page through the device (no L1 pages): the same tokens, and the same
    log-likelihood of them to the last bit, as with transformers' DynamicCache."""
    from transformers import DynamicCache
    model, tok = smol16() if which == "smollm2" else tiny_llama()
    ids = _ids(tok)
    plain = generate(model, ids, RAW_DENSE, device=False, progress=False)
    dev = generate(model, ids, RAW_DENSE, progress=False)
    assert dev["tokens"] == plain["tokens"]
    st = dev["device"]
    assert st["l1"] == 0 and st["l2"] + st["late"] + st["miss"] > 0, st
    assert st["check"]["pages_checked"] > 0 and st["check"]["mismatches"] == 0, st["check"]
    cache = SpecKVCache(model, codec="raw", l1_pages=0)
    try:
        nll_dev = score(model, ids, plain["tokens"], cache, progress=False)
    finally:
        cache.close()
    assert nll_dev == score(model, ids, plain["tokens"], DynamicCache(), progress=False)


def test_lossy_codec_changes_the_output_and_is_checked():
    """kivi_n10v9 (4x): the device's pages are within the codec's bound (checked) and the
    generation is not the plain one's (so the raw test above can tell a lossy path)."""
    model, tok = smol16()
    ids = _ids(tok)
    opts = replace(RAW_DENSE, codec="kivi_n10v9")
    plain = generate(model, ids, opts, device=False, progress=False)
    dev = generate(model, ids, opts, progress=False)
    assert first_divergence(plain["tokens"], dev["tokens"]) is not None
    st = dev["device"]
    assert st["check"]["mismatches"] == 0 and st["check"]["max_abs_error"] > 0
    assert st["compression_ratio"] > 3.9


def _pages_read(st):
    return st["l1"] + st["l2"] + st["late"] + st["miss"]


def test_sparse_selection_reads_quests_pages():
    """With k covering every page, sparse attention is dense attention (same tokens); with
    k = 1 it reads the window pages plus one page per stream and step."""
    model, tok = smol16()
    ids = _ids(tok, PROMPT * 3)                          # 70 tokens: 4 full pages
    n = ids.shape[1]
    opts = GenOptions(max_new_tokens=8, codec="raw", window=16, stop_at_eos=False)
    dense = generate(model, ids, opts, progress=False)
    wide = generate(model, ids, replace(opts, selection="sparse", k=16), progress=False)
    assert wide["tokens"] == dense["tokens"]
    assert _pages_read(wide["device"]) == _pages_read(dense["device"])
    one = generate(model, ids, replace(opts, selection="sparse", k=1), progress=False)
    streams = model.config.num_hidden_layers * model.config.num_key_value_heads
    # step s (0-based, s >= 1) attends n + s tokens: its full pages, window pages (the last
    # 16 tokens overlap one or two of them) and the top-1 candidate
    want = 0
    for s in range(1, opts.max_new_tokens):
        seq = n + s
        full = (seq - 1) // 16
        window_first = max(0, seq - 16) // 16
        want += min(full, full - window_first + 1) if full else 0
    assert _pages_read(one["device"]) == want * streams
    assert one["device"]["check"]["mismatches"] == 0


def test_tiny_llama_loads_through_model_path_and_keeps_its_shape():
    model, _ = tiny_llama()
    c = model.config
    assert (c.num_hidden_layers, c.num_key_value_heads, c.head_dim) == (3, 2, 128)
    assert type(model).__name__ == "LlamaForCausalLM"


def test_capacity_and_shape_errors_name_the_problem(tmp_path):
    model, _ = smol16()
    with pytest.raises(GenerateError, match="device pool holds"):
        check_capacity(model.config, 4000, "raw")
    check_capacity(model.config, 256, "kivi_k4v3")
    odd = write_model(tmp_path / "hd80", head_dim=80)
    m, _ = load_model(path=odd, dtype="float16", cache=False)
    with pytest.raises(GenerateError, match="head_dim 80"):
        SpecKVCache(m)
    with pytest.raises(ModelError, match="no such file"):
        load_model(path=tmp_path / "absent", cache=False)
    from transformers import GPT2Config
    GPT2Config(n_layer=2, n_embd=64, n_head=2).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ModelError, match="model_type 'gpt2'.*LlamaForCausalLM"):
        load_model(path=tmp_path / "gpt2", cache=False)


def test_cli_generates_compares_and_reports_errors(tmp_path, capsys):
    out = tmp_path / "gen.json"
    rc = cli_main(["--model", str(tiny_llama_dir()), "--prompt", PROMPT, "--max-new-tokens", "6",
                   "--codec", "raw", "--l1-pages", "0", "--compare", "--ignore-eos",
                   "--no-progress", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "first divergent token: none (identical)" in text and "tokens/s" in text
    res = json.loads(out.read_text())
    assert res["first_divergence"] is None and res["perplexity"]["change"] == 0.0
    rc = cli_main(["--model", str(tmp_path / "absent"), "--prompt", "x"])
    assert rc == 2 and "no such file" in capsys.readouterr().err
    long = tmp_path / "long.txt"
    long.write_text(PROMPT * 200)
    rc = cli_main(["--prompt-file", str(long), "--codec", "raw", "--no-progress"])
    assert rc == 2 and "device pool holds" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli_main(["--help"])
    assert e.value.code == 0 and "--compare" in capsys.readouterr().out


def test_capture_and_codec_eval_take_a_model_path(tmp_path, capsys):
    """--model for the other two model users: a trace captured from the random LLaMA keeps
    its shape and names its source; the codec evaluation scores it."""
    from host.codec_eval.perplexity import main as eval_main
    from host.traces.capture import run_capture
    from host.traces.format import load_trace
    text = tmp_path / "t.txt"
    text.write_text(PROMPT * 40)
    out = tmp_path / "tiny.safetensors"
    _, meta, _, _ = run_capture(text, out, 40, 4, chat=False, progress=False,
                                model_and_tokenizer=tiny_llama())
    t = load_trace(out)
    assert (t.n_layers, t.n_kv_heads, t.kv.shape[-1]) == (3, 2, 128)
    assert meta["model"]["source"] == f"local: {tiny_llama_dir()}"
    assert len(meta["model"]["weights_sha256"]) == 64
    js = tmp_path / "eval.json"
    assert eval_main(["--model", str(tiny_llama_dir()), "--text", str(text), "--tokens", "64",
                      "--segments", "1", "--modes", "raw,kivi_k4v3", "--window", "0",
                      "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert res["meta"]["model"] == str(tiny_llama_dir())
    assert res["results"]["kivi_k4v3"]["ratio"] > 3
