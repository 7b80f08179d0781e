# The README's two set-up commands: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs (torch pinned to the CPU build).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml setup.py gan_envs/_ext/area_resize.c | $(BIN)/python
	$(PIP) $(TORCH)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml setup.py gan_envs/_ext/area_resize.c | $(BIN)/python
	$(PIP) $(TORCH)
	$(PIP) -e ".[dev]"
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/gan-envs preview GanAtari/Breakout-v0 GanAtari/AirRaid-v0 GanAtari/Pong-v0 --out demo-out/preview.png

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_wrappers.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check gan_envs tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info demo-out
