# The two commands of the README. Each sets up .venv (CPU-only torch) and runs its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of torch first: a plain "torch" requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0+cpu" || \
	  $(BIN)/pip install --quiet "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
	$(BIN)/pip install --quiet -e ".[test,bench,models]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/xdiffc demo

# Two workers: CI has 2 cores, and the suite spends much of its time in subprocesses and Dask clusters.
test: $(STAMP)
	@$(BIN)/python -m pytest -q -n 2; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; failing" >&2; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python benchmarks/rate_distortion.py

clean:
	rm -rf $(VENV) build *.egg-info
