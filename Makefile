# Every target creates .venv and installs what it needs: a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean help

help:
	@echo "make demo   - run the whole pipeline offline on the simulated exchange (60 s)"
	@echo "make test   - run the test suite"
	@echo "make lint   - ruff"
	@echo "make bench  - run the benchmarks in benchmarks/"

$(STAMP): pyproject.toml setup.py src/cryptoarb/venues/kucoin/_framescan.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cryptoarb demo --duration $(or $(DURATION),60) --seed $(or $(SEED),7)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
