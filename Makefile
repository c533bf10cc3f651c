# bastion-guard developer entry points. Each target creates .venv on first use, so a fresh machine needs
# only Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_LOG ?= daemon/bastion_guard/defaults/demo-auth.log

.PHONY: run test lint bench clean

$(BIN)/bastionctl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: the main job on embedded defaults, no root: bastiond follows a local auth.log fed with the bundled
## demo lines, decides with the shipped rules and shows each ban/alert live (dry-run firewall, state in ./state)
run: $(BIN)/bastionctl
	$(BIN)/bastiond --demo

## test: the whole test suite (tests needing root or a missing binary skip with the reason)
test: $(BIN)/bastionctl
	$(BIN)/python -m pytest -q

lint: $(BIN)/bastionctl
	$(BIN)/ruff check daemon tests bench
	$(BIN)/mypy

bench: $(BIN)/bastionctl
	$(BIN)/python bench/bench_detect.py
	$(BIN)/python bench/bench_memory.py

clean:
	rm -rf $(VENV) build dist *.egg-info bench/out
