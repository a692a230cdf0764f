# Entry points. `make run` installs, gets the data, trains and serves;
# `make test` installs and runs the linter and the test suite.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 3000
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run install data train train-all serve test lint bench build clean

run: train serve

$(INSTALLED): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(INSTALLED)

install: $(INSTALLED)

# Downloads ml-1m.zip from GroupLens (or $$CF_DATA_URL) and verifies it.
data: install
	$(BIN)/python src/train.py --download-only

train: install
	$(BIN)/python src/train.py

train-all: install
	$(BIN)/python src/train.py --all

serve: install
	$(BIN)/bentoml serve src.service:CFRecommender --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check src tests benchmarks

test: lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_service.py

build: install
	$(BIN)/bentoml build

clean:
	rm -rf outputs .pytest_cache .ruff_cache
