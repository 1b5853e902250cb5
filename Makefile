# Two commands on a fresh machine: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MO := locales/fr/LC_MESSAGES/messages.mo locales/en/LC_MESSAGES/messages.mo

.PHONY: install run test lint format bench translations extract migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

locales/%/LC_MESSAGES/messages.mo: locales/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel --quiet compile -d locales -D messages -l $*

translations: $(MO)

run: install translations
	$(BIN)/mentorat-bot run

migrate: install
	$(BIN)/mentorat-bot migrate

test: install translations
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile
	$(BIN)/python tools/check_compose.py compose.yaml

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# BENCH_ARGS=--quick: a two-minute smoke run of the end-to-end bench.
bench: install translations
	$(BIN)/python bench/bench_matching.py
	$(BIN)/python bench/bench_e2e.py $(BENCH_ARGS)

# After changing a user-facing text: refresh the catalogues, then translate what is new.
extract: install
	$(BIN)/pybabel --quiet extract -F babel.cfg --no-location --sort-output -o locales/messages.pot .
	$(BIN)/pybabel --quiet update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching

clean:
	rm -rf $(VENV) $(MO) .mypy_cache .ruff_cache .pytest_cache
