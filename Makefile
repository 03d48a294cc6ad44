# robot_rl: the README's commands. `make demo`, `make test`, `make bench`, `make curves`.
#
#   make test FAST=1                      skip tests marked `slow`
#   make demo QUICK=1                     the demo's path with tiny budgets (a minute; CI runs it)
#   make test PYTEST_ARGS="-k store -x"   extra pytest arguments
#   make venv TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cuXXX"
#   make venv APT_PACKAGES=""             skip the system packages (MuJoCo's offscreen EGL rendering)

PYTHON       ?= python3
VENV         ?= .venv
TORCH_SPEC   ?= torch==2.13.0
APT_PACKAGES ?= libegl1 libegl-mesa0 libgl1-mesa-dri
FAST         ?=
PYTEST_ARGS  ?=

# DDS stays on this machine: every target runs in the `localhost` network mode (robot_rl.drivers.network:
# each process binds its DDS sockets to 127.0.0.1 only) with a private domain. Multi-machine use is an
# explicit opt-in on the command line, e.g.
#   make <target> ROBOT_RL_NETWORK=subnet ROS_DOMAIN_ID=7    (the older ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET also opts in)
ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
ROBOT_RL_NETWORK ?= $(if $(filter SUBNET,$(ROS_AUTOMATIC_DISCOVERY_RANGE)),subnet,localhost)
ROS_DOMAIN_ID ?= 42
MUJOCO_GL     ?= egl
export ROS_AUTOMATIC_DISCOVERY_RANGE ROBOT_RL_NETWORK ROS_DOMAIN_ID MUJOCO_GL
export PIP_DISABLE_PIP_VERSION_CHECK := 1

PIP        := $(VENV)/bin/python -m pip
STAMPS     := $(VENV)/.stamps
VENV_STAMP := $(STAMPS)/venv
APT_STAMP  := $(STAMPS)/apt

.PHONY: all venv apt s3-server test lint demo bench curves clean FORCE
.DEFAULT_GOAL := test

all: test

# --- value stamps: rewritten (new mtime) only when the variable's value changes ----------------
$(STAMPS)/torch-spec: FORCE
	@mkdir -p $(@D); printf '%s\n' '$(TORCH_SPEC)' | cmp -s - $@ || printf '%s\n' '$(TORCH_SPEC)' > $@
$(STAMPS)/apt-packages: FORCE
	@mkdir -p $(@D); printf '%s\n' '$(APT_PACKAGES)' | cmp -s - $@ || printf '%s\n' '$(APT_PACKAGES)' > $@

# --- system packages: installed only if missing (Mesa EGL, for MuJoCo's offscreen rendering)
apt: $(APT_STAMP)
$(APT_STAMP): $(STAMPS)/apt-packages
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing </dev/null; \
	fi
	@touch $@

# --- the virtual environment: refreshed only when the lock, pyproject.toml or TORCH_SPEC change
venv: $(APT_STAMP) $(VENV_STAMP)
$(VENV_STAMP): pyproject.toml requirements/lock.txt requirements/no-deps.txt $(STAMPS)/torch-spec
	@test -x $(VENV)/bin/python || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@# a changed TORCH_SPEC (e.g. CPU -> CUDA build of the same version) needs the old build removed
	@if [ -f $@ ] && [ $(STAMPS)/torch-spec -nt $@ ]; then $(PIP) uninstall -y -q torch; fi
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -r requirements/lock.txt
	$(PIP) install -q --no-deps -r requirements/no-deps.txt
	$(PIP) install -q -e . --no-deps
	@touch $@

# --- the S3 server the object-storage tests run against (moto, bound to 127.0.0.1 by the tests): a venv of
# its own, since botocore caps python-dateutil below the lock's pin (tests/s3_server.py)
S3_SERVER_STAMP := $(STAMPS)/s3-server
s3-server: $(S3_SERVER_STAMP)
$(S3_SERVER_STAMP): requirements/s3-server.txt
	@mkdir -p $(@D)
	@test -x $(VENV)/s3-server/bin/python || $(PYTHON) -m venv $(VENV)/s3-server
	$(VENV)/s3-server/bin/python -m pip install -q -r requirements/s3-server.txt
	@touch $@

# --- the README's commands ---------------------------------------------------------------------
# The whole suite, slow learning tests included; FAST=1 deselects tests marked `slow`.
test: venv $(S3_SERVER_STAMP)
	@rc=0; $(VENV)/bin/python -m pytest -q $(if $(FAST),-m "not slow") $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

# The main job on the WidowX twin (robot-rl demo): 5 scripted reach demonstrations, Cal-QL pretraining,
# WSRL fine-tuning on a perturbed twin standing in for the real robot, and a report in
# runs/demo/finetune/report/ (runs/demo/ is rewritten). QUICK=1 shrinks every budget (what CI runs).
demo: venv
	$(VENV)/bin/robot-rl demo $(if $(QUICK),quick=true)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_layers.py  # DESIGN.md's import layers

bench: venv $(S3_SERVER_STAMP)
	$(VENV)/bin/python benchmarks/store_bench.py
	$(VENV)/bin/python benchmarks/sim_bench.py
	$(VENV)/bin/python benchmarks/learner_bench.py
	$(VENV)/bin/python benchmarks/control_bench.py
	$(VENV)/bin/python benchmarks/finetune_bench.py
	$(VENV)/bin/python benchmarks/formats_bench.py
	$(VENV)/bin/python benchmarks/scale_bench.py

# SAC, Cal-QL, RLPD and WSRL on the WidowX pick-and-place twin (CSV + PNG under runs/bench/; long)
curves: venv
	$(VENV)/bin/python benchmarks/learning_curves.py

# Removes the venv, colcon output, caches and the demo store; other runs/ are kept.
clean:
	rm -rf $(VENV) build install log .pytest_cache .ruff_cache *.egg-info runs/demo
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
