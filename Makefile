# revisal: the only entry points a user needs.
#   make figures            run every notebook with configs/$(PROFILE).yaml (default: mini), then the README
#   make figures NB=04      one notebook (NB="02 04": several)
#   make test               pytest + the notebooks under nbval on configs/smoke.yaml, one worker per core
#   make test-fast          the library's tests only (no notebooks, no full-size models): about a minute
#   make lint               ruff over the code and the tests (part of make test)
#   make install            the library and the notebook tools only (what `make figures` needs), from requirements/runtime.txt
#   make lock               regenerate the lock files requirements/{runtime,test}.txt from pyproject.toml (make lock-check: CI)
#   make site               the executed notebooks of $(PROFILE) as a static site in build/site/ (after make figures)
#   make test-site          open build/site/ in headless Chromium and check it (CI, after make site)
#   make lab                the notebooks in JupyterLab, with the project's kernel
#   make figures PROFILE=paper DEVICE=cuda      (after `make data`)
#   make -j2 figures        notebooks in parallel (caches are written atomically)
#   make epoch-weights      regenerate the per-epoch checkpoints notebook 04 follows, seeds 0-2 (reproduction/weights/mini_resnet_epochs*/)
SHELL := /bin/bash
.DEFAULT_GOAL := install
.DELETE_ON_ERROR:
.PHONY: install install-test figures readme lab lint test test-fast test-paper clean models epoch-weights data data-voc data-coco data-models \
	lock lock-check site test-site

PROFILE ?= mini
DEVICE ?= cpu
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two install steps, each with its stamp: the runtime (the library and the notebook tools) for
# `make figures`, then the test extras (pytest, nbval, the test-only oracles) for `make test`. Each
# installs every package at the version its lock file pins (requirements/: made by `make lock` from
# pyproject.toml, torch and torchvision held at requirements/pins.txt, the versions that install
# from local disk on the project's machines), then the package itself without resolving anything.
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed-test
LOCK_RUNTIME := requirements/runtime.txt
LOCK_TEST := requirements/test.txt
PIP_INSTALL := $(PY) -m pip install --quiet
# Mini-profile figures go to figures/ (the README gallery), other profiles to figures/<profile>/.
FIGDIR := $(if $(filter mini,$(PROFILE)),figures,figures/$(PROFILE))

ALL_NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
NB ?=
NOTEBOOKS := $(if $(NB),$(sort $(foreach n,$(NB),$(wildcard notebooks/$(n)_*.ipynb))),$(ALL_NOTEBOOKS))
$(if $(NB),$(if $(filter $(words $(NB)),$(words $(NOTEBOOKS))),,$(error NB=$(NB): expected notebook numbers among \
	$(patsubst notebooks/%,%,$(ALL_NOTEBOOKS)))))
EXECUTED := $(patsubst notebooks/%,build/executed/$(PROFILE)/%,$(NOTEBOOKS))
SMOKE := $(patsubst notebooks/%,build/smoke/%,$(ALL_NOTEBOOKS))
CODE := $(shell find revisal reproduction -name '*.py')

# What each notebook writes (OUT_<NN>: the PNG of each figure, the Markdown of each table, then its
# verdict table) is declared by its study, reproduction/studies/<name>.py; build/studies.mk is
# generated from those declarations (make re-reads it when it changes).
# The studies need only the standard library: read with the system Python, before any install.
build/studies.mk: $(wildcard reproduction/studies/*.py)
	@mkdir -p $(@D)
	cd reproduction && $(PYTHON) -m studies make > ../$@.tmp && mv ../$@.tmp ../$@
include build/studies.mk
STAGES := $(patsubst notebooks/%,%,$(foreach nb,$(NOTEBOOKS),$(firstword $(subst _, ,$(nb)))))
# Longest first: under `make -j2 figures` notebook 02 (~40% of the compute) starts at once, 04 (~30%)
# on the other core, then 05 and the rest fill in (mini profile, 2 cores: ≈ 900 s of work in ≈ 470 s).
LONGEST_FIRST := 02 04 05
ORDERED := $(foreach n,$(LONGEST_FIRST),$(filter $(n),$(STAGES))) $(filter-out $(LONGEST_FIRST),$(STAGES))
OUTPUTS := $(foreach n,$(ORDERED),$(addprefix $(FIGDIR)/,$(OUT_$(n))))

install: $(RUNTIME_STAMP)
install-test: $(TEST_STAMP)

$(RUNTIME_STAMP): pyproject.toml $(LOCK_RUNTIME)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r $(LOCK_RUNTIME)
	$(PIP_INSTALL) --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (revisal)" >/dev/null
	touch $@

# Depends on the runtime stamp, hence on pyproject.toml too.
$(TEST_STAMP): $(RUNTIME_STAMP) $(LOCK_TEST)
	$(PIP_INSTALL) -r $(LOCK_TEST)
	touch $@

# The lock files, by pip-compile (pip-tools, in its own environment: never in the project's). Each
# run keeps every pin that still satisfies pyproject.toml, so `make lock-check` (CI) regenerates a
# copy and fails when it differs: a dependency added, removed or re-ranged without `make lock`.
# Resolved for CPython 3.11 on Linux x86_64 (the CUDA wheels torch needs there are pinned too).
LOCK_TOOLS := build/lock-tools
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(abspath $(LOCK_TOOLS))/bin/pip-compile --quiet --allow-unsafe \
	--no-emit-index-url --no-emit-find-links --strip-extras --annotation-style=line -c requirements/pins.txt
define compile_locks
	cd $(1) && $(PIP_COMPILE) --extra notebooks --extra test -o $(LOCK_TEST) pyproject.toml
	cd $(1) && $(PIP_COMPILE) --extra notebooks -c $(LOCK_TEST) -o $(LOCK_RUNTIME) pyproject.toml
endef
$(LOCK_TOOLS)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/python -m pip install --quiet pip-tools==7.7.0
lock: $(LOCK_TOOLS)/bin/pip-compile
	$(call compile_locks,.)
lock-check: $(LOCK_TOOLS)/bin/pip-compile
	rm -rf build/lock-check && mkdir -p build/lock-check
	cp -r pyproject.toml README.md requirements build/lock-check/
	$(call compile_locks,build/lock-check)
	diff -ru requirements build/lock-check/requirements || { echo "requirements/ is out of date with pyproject.toml: run make lock" >&2; exit 1; }

# figures/MANIFEST.json lists every output with its provenance (reproduction/provenance.py); the
# README's claims table, numbers and gallery are generated from the mini profile's outputs.
figures: $(OUTPUTS)
	$(PY) -m reproduction.provenance --figures $(FIGDIR) --write build/executed/$(PROFILE)
	$(if $(filter mini,$(PROFILE)),$(PY) -m reproduction.readme)

readme: $(RUNTIME_STAMP)
	$(PY) -m reproduction.readme

# The executed notebooks of $(PROFILE) (build/executed/$(PROFILE)/, kept by make figures) and their
# outputs as static HTML: build/site/index.html opens from disk, nothing is fetched from the network.
site: $(RUNTIME_STAMP)
	$(PY) -m reproduction.site --profile $(PROFILE)

# build/site/ in headless Chromium (Debian's chromium + chromium-driver): every image loads, no console
# error, the claims table has a row per verdict, every link resolves; screenshots in build/site/screens/.
test-site: $(TEST_STAMP)
	REVISAL_SITE=build/site $(PY) -m pytest -p no:cacheprovider tests/browser -m site

# JupyterLab on notebooks/ with the kernel `make install` registers ("Python 3 (revisal)"). A notebook
# run here writes to build/scratch/ (its figures_dir default), never over figures/.
lab: $(RUNTIME_STAMP)
	$(VENV)/bin/jupyter-lab notebooks/

# Under `make -jN` every kernel gets one intra-op thread, so N notebooks do not oversubscribe the
# cores (two 2-thread kernels on 2 cores ran ~10x slower). Recursive (=): MAKEFLAGS has -jN only then.
JOB_THREADS = $(if $(filter -j%,$(MAKEFLAGS)),OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
# glibc maps every block over 32 MB afresh and unmaps it when freed, so each pass that copies a large
# weight (oneDNN reorders VGG16's 411 MB fc6 kernel at every convolution) faults in all its pages
# again: a third of the time of a VGG16 pass on 2 cores went to the kernel. Heap-only blocks, kept
# for reuse, remove it (the sys time of the TorchRay parity went from 30 s to 3 s); the peak memory
# of a process grows by about the largest weight. Set MALLOC_TUNING= to turn it off.
MALLOC_TUNING ?= MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736

# Each notebook gets only the keys its parameters cell declares (configs/<profile>.yaml: shared keys
# plus a section per notebook). One step routes and checks every notebook's parameters before any
# notebook runs, so a misspelt key or a bad value stops `make figures` before any compute; it
# rewrites a notebook's file only when its content changes, so only that notebook re-runs.
PARAMS := build/params/$(PROFILE)
.PHONY: FORCE
FORCE:
.PRECIOUS: $(PARAMS)/%.yaml build/smoke/params/%.yaml
$(PARAMS)/.checked: FORCE $(RUNTIME_STAMP)
	$(PY) -m reproduction.params configs/$(PROFILE).yaml $(NOTEBOOKS) \
		--set device=$(DEVICE) --set figures_dir=$(FIGDIR) -o $(@D)
$(PARAMS)/%.yaml: $(PARAMS)/.checked ;

build/executed/$(PROFILE)/%.ipynb: notebooks/%.ipynb $(PARAMS)/%.yaml $(CODE) $(RUNTIME_STAMP)
	@mkdir -p $(@D)
	$(JOB_THREADS) $(MALLOC_TUNING) $(PY) -m papermill $< $@ -f $(PARAMS)/$*.yaml \
		-k python3 --cwd . --progress-bar --log-output --log-level WARNING

# Each output depends on the executed notebook that writes it.
define outputs_of
$(addprefix $(FIGDIR)/,$(OUT_$(1))): $(filter build/executed/$(PROFILE)/$(1)_%,$(EXECUTED))
	@test -f $$@ || { echo "$$@ was not written by its notebook" >&2; exit 1; }
endef
$(foreach n,$(STAGES),$(eval $(call outputs_of,$(n))))

build/smoke/params/.checked: FORCE $(RUNTIME_STAMP)
	$(PY) -m reproduction.params configs/smoke.yaml $(ALL_NOTEBOOKS) --set figures_dir=build/smoke/figures -o $(@D)
build/smoke/params/%.yaml: build/smoke/params/.checked ;

# Order-only on the test stamp: under `make -jN test` papermill does not run while pip installs.
build/smoke/%.ipynb: notebooks/%.ipynb build/smoke/params/%.yaml $(RUNTIME_STAMP) | $(TEST_STAMP)
	@mkdir -p $(@D)
	$(PY) -m papermill --prepare-only $< $@ -f build/smoke/params/$*.yaml -k python3 --log-level WARNING

# pytest-xdist runs one worker per core (TEST_WORKERS), each on one thread: the units of work are
# the notebooks and test modules (conftest.work_unit), the heavy ones handed out first.
TEST_WORKERS ?= auto
PYTEST := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(MALLOC_TUNING) $(PY) -m pytest -p no:cacheprovider -n $(TEST_WORKERS) \
	--dist loadscope --no-loadscope-reorder
test: lint $(TEST_STAMP) $(SMOKE)
	$(PYTEST) tests $(SMOKE) --nbval-lax --nbval-current-env -m "not paper_profile and not site"

# The tests marked paper_profile: every notebook end to end with configs/paper.yaml on fakes of the
# paper's data (≈ 3 min on 2 cores), the paper profile's code paths; CI runs it after make test.
test-paper: $(TEST_STAMP)
	$(PYTEST) tests -m paper_profile

# ruff, configured in pyproject.toml: a lint failure fails `make test`, hence CI.
lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check revisal reproduction tests benchmarks conftest.py

test-fast: $(TEST_STAMP)
	$(PYTEST) tests/library -m "not slow"

# Retrain the mini models (≈ 8 min on 2 cores) and the captioner (≈ 3 min) into data/models/; the
# shipped weights in reproduction/weights/ are what `make figures` uses, so this only reproduces them.
models: $(RUNTIME_STAMP)
	$(PY) -m reproduction.train --model mini_vgg mini_resnet
	$(PY) -m reproduction.captioner

# Regenerate the per-epoch checkpoints notebook 04 follows (reproduction/weights/mini_resnet_epochs/, float16,
# 3.7 MiB; ≈ 4 min on 2 cores): shipped so that `make figures` never trains, whatever the CPU.
epoch-weights: $(RUNTIME_STAMP)
	for seed in 0 1 2; do $(PY) -m reproduction.train --model mini_resnet --dynamics --ship-epochs --seed $$seed \
		--out data/models/seed$$seed || exit 1; done

# Paper profile: datasets and TorchRay checkpoints (nothing else ever downloads).
data: data-voc data-coco data-models
	$(PY) -m reproduction.datasets.download imagenet
data-voc: $(RUNTIME_STAMP)
	$(PY) -m reproduction.datasets.download voc
data-coco: $(RUNTIME_STAMP)
	$(PY) -m reproduction.datasets.download coco
data-models: $(RUNTIME_STAMP)
	$(PY) -m reproduction.datasets.download models

clean:
	rm -rf build .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
