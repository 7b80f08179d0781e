# The README's two set-up commands: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs (torch pinned to the CPU build).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
# Where no CPU wheel of torch is at hand (PyPI's Linux wheel is a multi-GB CUDA build), take it
# from PyTorch's own index: make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml setup.py gan_envs/_ext/area_resize.c | $(BIN)/python
	$(PIP) $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) -e ".[train]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml setup.py gan_envs/_ext/area_resize.c | $(BIN)/python
	$(PIP) $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) -e ".[dev]"
	touch $(VENV)/.installed $@

GAMES := GanAtari/Breakout-v0 GanAtari/AirRaid-v0 GanAtari/Pong-v0

# The main job on a small default (about a minute on 2 cores): collect a 3-game dataset,
# describe and preview it, train a small GAN on it for a few iterations and sample it.
demo: $(VENV)/.installed
	mkdir -p demo-out
	$(BIN)/gan-envs collect $(GAMES) --out demo-out/atari3.h5 --steps 3000 --num-envs 4 --overwrite
	$(BIN)/gan-envs info demo-out/atari3.h5
	$(BIN)/gan-envs verify demo-out/atari3.h5
	$(BIN)/gan-envs preview demo-out/atari3.h5 --out demo-out/dataset.png
	$(BIN)/gan-envs preview $(GAMES) --out demo-out/preview.png
	rm -rf demo-out/gan
	# one torch thread: two threads on a core another process is using run ~17x slower (docs/gan.md)
	$(BIN)/gan-envs train gan demo-out/atari3.h5 --out demo-out/gan --iterations 800 --width 128 --sample-every 100 --threads 1
	$(BIN)/gan-envs sample demo-out/gan --out demo-out/samples.png --n 16

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_wrappers.py
	$(BIN)/python benchmarks/bench_datasets.py
	$(BIN)/python benchmarks/bench_collect.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check gan_envs tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info demo-out
