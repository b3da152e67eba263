# make run  - start the app on its shipped defaults (creates .venv and installs on first use)
# make test - run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-slow bench
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

test-slow: $(VENV)/.installed
	$(BIN)/python -m pytest -m slow

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks
