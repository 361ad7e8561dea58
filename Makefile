# npcseg: every target creates .venv and installs pinned dependencies itself.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= demo-output

.PHONY: demo test lint test-slow bench clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	@if $(BIN)/pip list 2>/dev/null | grep -qi '^nvidia-'; then echo 'error: CUDA packages were installed'; exit 1; fi
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/npcseg demo $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: $(STAMP) lint browser
	$(BIN)/pytest

# The report test drives headless Chromium; install Debian's package when we may (root + apt), else the test
# skips and says why. Never fails the build.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo 'installing chromium for the report test (apt-get)'; \
	    DEBIAN_FRONTEND=noninteractive timeout 240 apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { timeout 90 apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive timeout 240 apt-get install -y -q chromium >/dev/null 2>&1; } || \
	    echo 'warning: could not install chromium; the browser test will be skipped'; \
	  else echo 'note: chromium not found and not installable here; the browser test will be skipped'; fi; }

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/foundation_speed.py --cases 3

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
