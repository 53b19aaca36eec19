# nautilus-hmm — the commands a user types. `make setup` once, then the rest.
PYTHON ?= python3.12
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo_run

export RAY_AUTH_MODE ?= disabled
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: setup test demo bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

setup: $(BIN)/python  ## venv on Python 3.12 with everything installed
	$(BIN)/python -m uv pip install --python $(BIN)/python --quiet -e '.[dev]'

test: setup  ## the whole suite: unit, integration (real Ray, real Nautilus), end-to-end
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: setup  ## synthetic market → features → model → backtest, into $(DEMO)/
	$(BIN)/python -m ops.demo --out $(DEMO)

bench: setup  ## every benchmark; each writes bench/results/<name>.json and prints a table
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache bench/results
