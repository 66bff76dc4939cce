# The two commands a new machine needs: `make demo` (the main job) and `make test` (the suite).
# Each creates the virtual environment it needs in $(VENV) on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0 is the CPU build that lies on this kind of machine's disk; elsewhere pip picks
# the wheel for your platform. Override with e.g. `make test TORCH=torch==2.14.1`.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)" || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e ".[test]"
	# lmms-eval's own requirements would replace torch; its model API needs only what .[test] has
	$(PY) -m pip install -q --no-deps "lmms-eval==0.7.3"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vidagent demo

# The static checks, the same as .pre-commit-config.yaml's: lint, formatting, types. mypy's
# packages and settings are pyproject.toml's [tool.mypy].
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium not installed: browser tests will be skipped"
	command -v espeak-ng >/dev/null || (apt-get update -qq && apt-get install -y -qq espeak-ng) || echo "espeak-ng not installed: tests on generated speech will be skipped"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# types before the slow suite: a type error fails in seconds, not after ten minutes of tests
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
