# revisal: the only entry points a user needs.
#   make figures            run every notebook with configs/$(PROFILE).yaml (default: mini)
#   make test               pytest + nbval on the smoke parameters
#   make figures PROFILE=paper DEVICE=cuda
SHELL := /bin/bash
.DELETE_ON_ERROR:
.PHONY: install figures test clean models data data-voc data-coco data-models

PROFILE ?= mini
DEVICE ?= cpu
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# These two install offline on the project's machines (pip takes them from local disk).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
EXECUTED := $(patsubst notebooks/%,build/executed/$(PROFILE)/%,$(NOTEBOOKS))
SMOKE := $(patsubst notebooks/%,build/smoke/%,$(NOTEBOOKS))
LIBRARY := $(shell find revisal -name '*.py')

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[notebooks,test]' $(TORCH_PINS)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (revisal)" >/dev/null
	touch $@

figures: $(EXECUTED)

build/executed/$(PROFILE)/%.ipynb: notebooks/%.ipynb configs/$(PROFILE).yaml $(LIBRARY) $(STAMP)
	@mkdir -p $(@D)
	$(PY) -m papermill $< $@ -f configs/$(PROFILE).yaml -p device $(DEVICE) -k python3 --cwd . --progress-bar

build/smoke/%.ipynb: notebooks/%.ipynb configs/smoke.yaml $(STAMP)
	@mkdir -p $(@D)
	$(PY) -m papermill --prepare-only $< $@ -f configs/smoke.yaml -k python3 --log-level WARNING

test: $(STAMP) $(SMOKE)
	$(PY) -m pytest tests $(SMOKE) --nbval-lax --nbval-current-env -p no:cacheprovider

# Retrain the mini models from scratch (≈ 7 min on 2 cores) into data/models/; the shipped weights in
# revisal/weights/ are what `make figures` uses, so this is only needed to reproduce them.
models: $(STAMP)
	$(PY) -m revisal.train --model mini_vgg mini_resnet

# Paper profile: datasets and TorchRay checkpoints (nothing else ever downloads).
data: data-voc data-coco data-models
	$(PY) -m revisal.data.download imagenet
data-voc: $(STAMP)
	$(PY) -m revisal.data.download voc
data-coco: $(STAMP)
	$(PY) -m revisal.data.download coco
data-models: $(STAMP)
	$(PY) -m revisal.data.download models

clean:
	rm -rf build .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
