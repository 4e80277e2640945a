# The two commands a newcomer needs: `make demo` and `make test`.
# Each creates .venv (Python >= 3.11) and installs the project into it when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-necessity test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Early Signal needs Python >= 3.11, found " + sys.version'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/earlysignal demo

# The demo plus the necessity of each source (retrains once per source: allow several times the training time).
demo-necessity: $(STAMP)
	$(BIN)/earlysignal demo --necessity

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis mlruns
