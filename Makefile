PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit lint browser bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

jsons/user_profile.json: | $(STAMP)
	$(BIN)/ledger generate-profiles --out $@

run: $(STAMP) jsons/user_profile.json
	$(BIN)/ledger serve --host 0.0.0.0 --port 8080 --profiles jsons/user_profile.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The docs page is tested in a real browser: Debian's chromium, never a downloaded one.
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

test: lint browser
	$(BIN)/pytest

# The fast tier: no database, no server, a few seconds.
test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

# The load generator must not be the bottleneck: wrk, from Debian's packages.
bench: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk || sudo apt-get install -y wrk
	PYTHONPATH=. $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .hypothesis
