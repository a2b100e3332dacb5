# QKD-enabled GMPLS testbed. `make demo` and `make test` do their own set-up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DEBS := iproute2 tshark frr bird2 nftables tcpdump telnet graphviz ethtool iperf3
STAMP := $(VENV)/.installed

.PHONY: setup debs venv test test-fast e2e lint demo bench clean down

setup: debs venv

# Debian packages the tests and the demo need, installed only when missing.
debs:
	@missing=""; for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q -ra

test-fast: setup
	$(PY) -m pytest -q -m "not netns and not slow"

e2e: setup
	$(PY) -m pytest -q -ra tests/e2e

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

demo: setup
	$(VENV)/bin/qkdnet demo topologies/paper.yaml

bench: setup
	for b in bench/*.py; do $(PY) $$b || exit 1; done

down:
	-$(VENV)/bin/qkdnet down

clean: down
	rm -rf $(VENV) run .pytest_cache .mypy_cache .ruff_cache *.egg-info

# --- Docker (docs/docker.md): one image for every role, built without pulling anything ---
IMAGE ?= qkdnet:latest
BASE_IMAGE ?= debian:bookworm-slim
.PHONY: base-image wheels image docker-e2e

# debian:bookworm-slim, made locally with debootstrap when it is not there (no registry).
base-image:
	@docker image inspect $(BASE_IMAGE) >/dev/null 2>&1 || { \
	  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; \
	  image/make-base-image.sh $(BASE_IMAGE); }

# The project and its runtime dependencies as wheels, at the venv's versions. A fixed
# SOURCE_DATE_EPOCH makes the project's wheel byte-identical while the sources are, so
# Docker's layer cache holds across `make image` runs.
wheels: venv
	@rm -rf build/wheels && mkdir -p build/wheels
	@$(PY) -m pip freeze --exclude-editable > build/constraints.txt
	SOURCE_DATE_EPOCH=315532800 $(PY) -m pip wheel -q . -c build/constraints.txt -w build/wheels

# The build stage is tagged too (qkdnet-build), so that the layer cache survives the prune of
# the previous builds' dangling images (only images labelled org.qkdnet.image).
# Progress: the builder's step lines only (apt and pip run only when their inputs change).
image: base-image wheels
	@echo "building qkdnet-build:latest, then $(IMAGE)"
	@set -o pipefail; docker build --build-arg BASE=$(BASE_IMAGE) --target build -t qkdnet-build:latest . \
	  | sed -u -n -E 's/^(Step [0-9]+\/[0-9]+ : .{0,90}).*/  \1/p'
	@set -o pipefail; docker build --build-arg BASE=$(BASE_IMAGE) -t $(IMAGE) . \
	  | sed -u -n -E 's/^(Step [0-9]+\/[0-9]+ : .{0,90}).*/  \1/p; s/^Successfully tagged (.*)/  tagged \1/p'
	@docker image prune -f --filter label=org.qkdnet.image >/dev/null

docker-e2e: setup image
	$(PY) -m pytest -q -ra -m docker tests/docker
