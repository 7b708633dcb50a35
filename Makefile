PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test bench soak install install-dev worker beat clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_roles
	$(PY) manage.py ensure_admin
	$(PY) manage.py run_periodic & trap "kill $$!" EXIT; $(PY) manage.py runserver 127.0.0.1:8000

worker: install
	$(VENV)/bin/celery -A connector worker --loglevel=INFO

beat: install
	$(VENV)/bin/celery -A connector beat --loglevel=INFO

test: install-dev
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install-dev
	$(PY) -m tests.bench $(BENCH_ARGS)

soak: install-dev
	$(PY) -m tests.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3
