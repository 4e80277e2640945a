# The two commands a newcomer needs: `make demo` and `make test`.
# Each creates .venv (Python >= 3.11) and installs the project into it when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-necessity test install clean examples

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

# The two public-data examples (docs/examples.md): adapter -> validate -> features -> train -> audit -> score.
examples: $(STAMP)
	for ex in rossi pbcseq; do \
	  $(BIN)/python examples/$$ex/adapt.py && \
	  $(BIN)/earlysignal validate --config examples/$$ex/config.yaml && \
	  $(BIN)/earlysignal features --config examples/$$ex/config.yaml && \
	  $(BIN)/earlysignal train --config examples/$$ex/config.yaml || exit 1; \
	done
	$(BIN)/earlysignal audit --config examples/rossi/config.yaml --model models:/rossi-arrest@candidate --out reports/examples/rossi-audit
	$(BIN)/earlysignal score --config examples/rossi/config.yaml --model models:/rossi-arrest@candidate --as-of 2020-12-01 --allow-unapproved --out reports/examples/rossi-scores
	$(BIN)/earlysignal audit --config examples/pbcseq/config.yaml --model models:/pbcseq-death@candidate --out reports/examples/pbcseq-audit
	$(BIN)/earlysignal score --config examples/pbcseq/config.yaml --model models:/pbcseq-death@candidate --as-of 2009-07-01 --allow-unapproved --out reports/examples/pbcseq-scores

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis mlruns
