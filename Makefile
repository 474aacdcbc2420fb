# Two commands on a fresh machine: `make test` and `make demo`. Each creates .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

REF := .venv-ref
REF_STAMP := $(REF)/.installed

.PHONY: install test test-fast test-reference lint typecheck demo bench clean

$(STAMP): pyproject.toml constraints/cpu.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints/cpu.txt -e '.[dev,offline]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check stylecond datamodules tests benchmarks
	$(BIN)/ruff format --check stylecond datamodules tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## The README's test command: lint, types, then every test (fast and slow) but the reference parity ones.
test: lint typecheck
	$(BIN)/python -m pytest -q --ignore=tests/reference

## audiocraft, in a test-only environment layered over .venv: parity of the released-model loader.
$(REF_STAMP): $(STAMP) tests/reference/requirements.txt tests/reference/make_env.py
	test -x $(REF)/bin/python || $(BIN)/python -m venv $(REF)
	$(REF)/bin/python tests/reference/make_env.py $(abspath $(BIN)/python)
	$(REF)/bin/python -m pip install -q --disable-pip-version-check --no-deps -c constraints/cpu.txt \
		-r tests/reference/requirements.txt
	touch $(REF_STAMP)

test-reference: $(REF_STAMP)
	$(REF)/bin/python -m pytest -q tests/reference

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" --ignore=tests/reference

demo: $(STAMP)
	$(BIN)/stylecond demo --out demo_out

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_data.py

clean:
	rm -rf $(VENV) $(REF) demo_out .pytest_cache .mypy_cache .ruff_cache
