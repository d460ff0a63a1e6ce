# SpecKV-FPGA — every target installs what it needs first (scripts/setup.sh is idempotent).
PY := .venv/bin/python
SETUP := scripts/setup.sh

.PHONY: setup sim test bench traces clean help
help:
	@echo "make setup   install system packages and the .venv (idempotent)"
	@echo "make sim     build the SoC + firmware and run it under Verilator (the demo)"
	@echo "make test    run the whole test suite"
	@echo "make bench   simulation-speed benchmark (bare Verilator / pyverilator / native driver)"
	@echo "make traces  capture the four full workload traces into build/traces (checked by hash)"

setup:
	@bash $(SETUP)

sim: setup
	$(PY) soc/build.py --sim

test: setup
	$(PY) -m pytest tests

bench: setup
	$(PY) bench/sim_speed.py

traces: setup
	HF_HUB_OFFLINE=1 $(PY) -m host.workloads --out build/traces --check traces/SHA256SUMS.full

clean:
	rm -rf build
