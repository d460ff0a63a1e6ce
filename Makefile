# SpecKV-FPGA — every target installs what it needs first (scripts/setup.sh is idempotent).
PY := .venv/bin/python
SETUP := scripts/setup.sh

.PHONY: setup lint sim test bench traces codec-eval codec-ecp5 codec-simcost bitstream sweep fuzz clean help
help:
	@echo "make setup   install system packages and the .venv (idempotent)"
	@echo "make sim     build the SoC + firmware and run it under Verilator (the demo)"
	@echo "make lint    ruff over every Python file (make test runs it first)"
	@echo "make test    lint, then the whole test suite"
	@echo "make bench   benchmarks: simulation speed (bare Verilator / pyverilator / driver), datapath (DMA, TLB, demand-read latency), codec speed and ratio, firmware cycles per prediction (LSTM on the CFU and in C), a whole step's speculation per simulated DRAM"
	@echo "make traces  capture the four full workload traces into build/traces (checked by hash)"
	@echo "make codec-eval  perplexity of SmolLM2 with its KV cache round-tripped through each codec mode (~3 min a mode)"
	@echo "make bitstream [BOARD=ulx3s|ecpix5]  FPGA bitstream (yosys, nextpnr-ecp5, ecppack); report -> docs/bitstreams/"
	@echo "make codec-ecp5  ECP5 (ULX3S 85F) LUT/FF/EBR/DSP and Fmax of the codec cores alone (slow: yosys + nextpnr)"
	@echo "make codec-simcost  Verilator cost per eval() of each codec core alone"
	@echo "make fuzz    10,000 corrupt pages through the SoC's decompressor behind its DMA: docs/results/reliability/fuzz.json"
	@echo "make sweep   the four workloads x six predictors x k grid on Ray, on all cores and on one (~1 h on 2 cores): docs/results/sweep/"

setup:
	@bash $(SETUP)

sim: setup
	$(PY) soc/build.py --sim

lint: setup
	.venv/bin/ruff check .

test: setup lint
	$(PY) -m pytest tests -n auto --durations=15

bench: setup
	$(PY) bench/sim_speed.py
	$(PY) bench/datapath.py
	$(PY) bench/datapath.py --dram sdr --json build/bench/datapath-sdr.json
	$(PY) bench/codec_speed.py
	$(PY) bench/codec_ratio.py
	$(PY) bench/prefetch_firmware.py
	$(PY) bench/speculation_step.py

traces: setup
	HF_HUB_OFFLINE=1 $(PY) -m host.traces.workloads --out build/traces --check traces/SHA256SUMS.full

LIC := /usr/share/common-licenses
CODEC_TEXT ?= $(LIC)/GPL-3,$(LIC)/GPL-2,$(LIC)/LGPL-2.1,$(LIC)/GFDL-1.3,$(LIC)/MPL-1.1,$(LIC)/MPL-2.0
CODEC_SEGMENTS ?= 24
CODEC_WINDOW ?= 4
codec-eval: setup
	HF_HUB_OFFLINE=1 $(PY) -m host.codec_eval.perplexity --text $(CODEC_TEXT) --tokens 1024 \
		--segments $(CODEC_SEGMENTS) --window $(CODEC_WINDOW) --skip-fp32 --json build/codec_eval.json

BOARD ?= ulx3s
bitstream: setup
	$(PY) soc/build.py --board $(BOARD) --build
	mkdir -p docs/bitstreams
	cp build/$(BOARD)/report.txt docs/bitstreams/$(BOARD).txt
	cp build/$(BOARD)/report.json docs/bitstreams/$(BOARD).json

sweep: setup traces
	$(PY) bench/sweep_scaling.py
	.venv/bin/speckv-sweep run docs/results/sweep/codec.toml --plots docs/results/sweep
	.venv/bin/speckv-sweep run docs/results/sweep/serve.toml --plots docs/results/sweep

fuzz: setup
	.venv/bin/speckv-fuzz --pages 10000 --json docs/results/reliability/fuzz.json

codec-ecp5: setup
	$(PY) bench/codec_ecp5.py --json build/codec_ecp5.json

codec-simcost: setup
	$(PY) bench/codec_sim_cost.py --json build/codec_sim_cost.json

clean:
	rm -rf build
