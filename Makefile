# make run  - start the app on its shipped defaults (creates .venv and installs on first use)
# make test - run the test suite (make test-fast: the unit tier, for the inner loop)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast test-slow bench
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	# torchattacks pins an old requests that clashes with streamlit; its code does not use it.
	$(BIN)/python -m pip install -q --no-deps "torchattacks>=3.5"
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

run: $(VENV)/.installed
	$(BIN)/streamlit run app.py

test: $(VENV)/.installed
	$(BIN)/python -m pytest

# The unit tier: no app pages or browser, no training subprocesses or full protocols, no ../shared, no GPU
# (its -m replaces the addopts filter, so it names gpu itself).
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not slow and not gpu and not shared and not browser and not integration"

test-slow: $(VENV)/.installed
	$(BIN)/python -m pytest -m slow

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks
