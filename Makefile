# Two commands do all set-up: `make demo` and `make test`. Both create and reuse .venv.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sfbd-installed
# The CPU build of torch that pip finds on a fresh machine; users with a CUDA build keep theirs.
TORCH  ?= torch==2.13.0

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e '.[test]'
	touch $@

demo: install
	$(VENV)/bin/sfbd demo --out runs/demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest

clean:
	rm -rf runs build dist src/*.egg-info .pytest_cache .ruff_cache
