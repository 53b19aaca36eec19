# nautilus-hmm — the commands a user types. `make setup` once, then the rest.
PYTHON ?= python3.12
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo_run

export RAY_AUTH_MODE ?= disabled
export OPENBLAS_NUM_THREADS ?= 1

SYSTEM_TOOLS := chromium prometheus

.PHONY: setup system lock test demo bench lint clean dashboards

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

setup: $(BIN)/python  ## venv on Python 3.12 with everything installed, at the locked versions
	$(BIN)/python -m uv pip install --python $(BIN)/python --quiet -r requirements.lock
	$(BIN)/python -m uv pip install --python $(BIN)/python --quiet --no-deps -e .

system:  ## Debian tools the tests drive: headless Chromium (report), Prometheus (metrics)
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lock:  ## re-resolve requirements.lock from pyproject.toml (then update ray_cluster.yaml pins)
	$(BIN)/python -m uv pip compile pyproject.toml --extra dev --python-version 3.12 \
		--python-platform x86_64-manylinux_2_28 --quiet -o requirements.lock

test: setup system  ## the whole suite: unit, integration (real Ray, real Nautilus), end-to-end
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: setup  ## Tune sweep → registry → Serve → held-out backtest → acceptance/report → replayed live node → rollup → clean stop, into $(DEMO)/ (< 15 min on 2 cores: bench/bench_demo.py)
	$(BIN)/python -m ops.demo --out $(DEMO)

dashboards: setup  ## regenerate ops/grafana/dashboards/*.json from ops/grafana/dashboards.py (commit them)
	$(BIN)/python -m ops.grafana.dashboards

bench: setup  ## every benchmark; each writes bench/results/<name>.json and prints a table
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache bench/results
