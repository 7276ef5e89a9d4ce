# Two commands: `make run` and `make test`. Both set up what they need and are idempotent.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test lint format bench i18n clean-venv system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changes.
$(VENV)/.installed-app: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-app

# Reports need a CJK font (without one, Chinese prints as empty boxes) and pdftoppm
# (the page-1 preview): install them when missing (as root), else say what to install.
system-packages:
	@need=""; \
	fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || need="$$need fonts-noto-cjk"; \
	command -v pdftoppm >/dev/null 2>&1 || need="$$need poppler-utils"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	  else echo "make run: install$$need (apt-get install$$need) for the reports"; exit 1; fi; \
	fi

run: $(VENV)/.installed-app system-packages
	QMS_SECURE_COOKIES=0 $(BIN)/qms init-db
	QMS_SECURE_COOKIES=0 $(BIN)/qms keys demo --site-name "Xuhui Demonstration Hospital, Shanghai"
	QMS_SECURE_COOKIES=0 $(BIN)/qms demo --reports
	@# The scheduler runs beside the web server; Ctrl-C stops both (the trap, should serve end first).
	@QMS_SECURE_COOKIES=0 $(BIN)/qms scheduler & scheduler=$$!; \
	trap 'kill $$scheduler 2>/dev/null; wait $$scheduler 2>/dev/null' EXIT INT TERM; \
	QMS_SECURE_COOKIES=0 $(BIN)/qms serve --host $(HOST) --port $(PORT)

# The suite runs on both cores (pytest-xdist): every test makes its own databases, servers
# and ports, so the two workers share nothing. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .

# Translations: extract every message from qms/ and templates/ (babel.cfg), merge the new
# ones into the en and zh_CN catalogs, and compile them. The compiled .mo files are
# committed, so a fresh clone and the wheel need no step of their own; tests/test_i18n.py
# fails when a .mo is older than its .po or a zh_CN entry is missing or untranslated.
I18N_KEYWORDS := -k _ -k _l -k ngettext:1,2 -k N_ -k gettext -k lazy_gettext
i18n: $(VENV)/.installed-app
	$(BIN)/pybabel -q extract -F babel.cfg $(I18N_KEYWORDS) --no-wrap --sort-by-file \
		--project qms -o qms/translations/messages.pot .
	$(BIN)/pybabel -q update -i qms/translations/messages.pot -d qms/translations \
		--no-wrap --ignore-obsolete
	$(BIN)/pybabel compile -d qms/translations --statistics

bench: $(VENV)/.installed-test
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
