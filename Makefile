# Warren: the two commands in the README are `make demo` and `make test`; the rest are their parts.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
TOOLS := tools
# The worker's benchmarks run it as the appliance does: in a venv of the distribution's own Python
# (roles/warren_worker/vars/Debian.yml), not of whichever python3 comes first on PATH: a build without the
# distribution's PGO/LTO runs Warren's per-message path far slower (docs/benchmarks.md).
DEPLOY_PYTHON ?= /usr/bin/python3
BENCH_VENV := $(CURDIR)/.venv-bench
ROLE_TESTS := $(wildcard roles/*/tests) library/tests
# The linux/arm64 image `make image-arm64` builds and the arm64 scenario runs on.
export WARREN_ARM64_IMAGE ?= warren/debian12-systemd-arm64:latest

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt worker/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet -e ./worker
	@# ansible.cfg names this stable path; the real one depends on the Python version.
	ln -sfn "$$($(VENV)/bin/python -c 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))')/plugins/strategy" \
		$(VENV)/mitogen-strategy
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Controller virtualenv (Ansible, Molecule, test tools, the worker package)

$(BENCH_VENV)/.installed: requirements.txt worker/pyproject.toml worker/benchmarks/requirements.txt
	$(DEPLOY_PYTHON) -c 'import ensurepip' 2>/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
	$(DEPLOY_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	@# The worker with whatever it depends on at the controller's pins (pip takes no extras in a constraints file).
	$(BENCH_VENV)/bin/pip install --quiet -c <(grep -v '\[' requirements.txt) -e ./worker
	$(BENCH_VENV)/bin/pip install --quiet -r worker/benchmarks/requirements.txt
	touch $@

.PHONY: bench-venv
bench-venv: $(BENCH_VENV)/.installed ## The worker in a venv of $DEPLOY_PYTHON (default /usr/bin/python3), for the benchmarks

.PHONY: engine
engine: ## Make a Docker engine answer (installs Debian's docker.io and starts dockerd when needed)
	$(TOOLS)/ensure-container-engine.sh

.PHONY: image
image: engine ## Build the local Debian 12 systemd image unless it exists ($WARREN_IMAGE overrides)
	$(TOOLS)/build-image.sh

.PHONY: arm64-emulation
arm64-emulation: ## Let this machine run linux/arm64 containers (qemu-user-static + binfmt; nothing to do on Arm64)
	$(TOOLS)/ensure-arm64-emulation.sh

.PHONY: image-arm64
image-arm64: engine arm64-emulation ## Build the local linux/arm64 Debian 12 systemd image unless it exists ($WARREN_ARM64_IMAGE overrides)
	$(TOOLS)/build-image.sh --arch arm64

.PHONY: lint
lint: venv ## yamllint, ansible-lint (production profile), ruff, mypy
	yamllint .
	ansible-lint
	ruff check .
	ruff format --check .
	mypy --config-file worker/pyproject.toml worker/src

.PHONY: unit
unit: venv ## Unit tests: worker pure logic, role filters and bad-input playbook runs (no broker needed)
	@# One pytest per tree: each tree's conftest is imported as `conftest`, so sharing a process would shadow them.
	for tests in worker/tests/unit $(ROLE_TESTS); do pytest -q "$$tests"; done

.PHONY: integration
integration: venv ## Worker integration tests against a real RabbitMQ on 127.0.0.1 (started if absent)
	worker/scripts/ensure-test-broker.sh
	pytest -q worker/tests/integration

.PHONY: browser
browser: ## Debian's chromium, chromium-driver and certutil for the management UI's browser test (apt, when missing)
	$(TOOLS)/ensure-browser.sh

.PHONY: molecule
molecule: venv image browser ## molecule test: converge site.yml into a systemd container, idempotence, testinfra verify
	$(TOOLS)/molecule-test.sh

.PHONY: molecule-arm64
molecule-arm64: venv image-arm64 ## molecule test -s arm64: the same converge, idempotence and verify on linux/arm64 (emulated here)
	@# The scenarios share one platform (.config/molecule/config.yml); this one runs it from the arm64 image.
	WARREN_IMAGE=$(WARREN_ARM64_IMAGE) $(TOOLS)/molecule-test.sh -s arm64

.PHONY: molecule-cluster
molecule-cluster: venv image ## molecule test -s cluster: 3 brokers in one cluster, quorum queues, node loss and rolling restart
	$(TOOLS)/molecule-test.sh -s cluster

.PHONY: molecule-gce-check
molecule-gce-check: venv ## Syntax check of the gce scenario (running it needs a Google Cloud project: docs/arm64.md)
	molecule syntax -s gce
	ansible-playbook --syntax-check -i localhost, molecule/gce/create.yml molecule/gce/destroy.yml

.PHONY: molecule-gce
molecule-gce: venv ## molecule test -s gce: the same suite on C4A/T2A SLES 15 arm64 instances (your GCP project, billed)
	$(TOOLS)/molecule-test.sh -s gce

.PHONY: test
test: lint unit integration molecule molecule-gce-check ## Everything CI runs
	@# The cluster and arm64 scenarios side by side: one after the other they would take CI past its 45 minutes on
	@# a 2-core machine. After the default scenario, which makes the deployment's CA and secrets they share.
	$(MAKE) -j2 --output-sync=target molecule-cluster molecule-arm64

.PHONY: demo
demo: venv image ## Deploy Warren into a local container and show it processing the tutorials' events
	$(TOOLS)/demo.sh

.PHONY: demo-clean
demo-clean: ## Remove the demo container
	docker rm -f warren-demo

.PHONY: bench-converge
bench-converge: venv image image-arm64 ## Benchmark: first converge vs idempotent re-run, x86_64 and arm64 side by side
	$(TOOLS)/benchmark-converge.sh

.PHONY: bench-cluster
bench-cluster: venv image ## Benchmark: classic queue on 1 node vs. quorum on 3, throughput and latency (builds the cluster scenario)
	$(TOOLS)/benchmark-cluster.sh

.PHONY: bench-logging
bench-logging: venv image ## Benchmark: the demo appliance's drain rate at the default log level vs. logging off
	python $(TOOLS)/benchmark-logging.py

.PHONY: bench-worker
bench-worker: bench-venv ## Benchmark: worker and publisher throughput against the local test broker
	worker/scripts/ensure-test-broker.sh
	$(BENCH_VENV)/bin/python worker/benchmarks/throughput.py --chart docs/img/throughput.png

.PHONY: bench-hot-path
bench-hot-path: bench-venv ## Benchmark: Warren's own CPU per message, without broker (low noise)
	$(BENCH_VENV)/bin/python worker/benchmarks/hot_path.py

.PHONY: bench-instructions
bench-instructions: bench-venv ## Benchmark: instructions per message under callgrind, worker vs. pika consumers (noise-free)
	worker/scripts/ensure-test-broker.sh
	command -v valgrind >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind; }
	$(BENCH_VENV)/bin/python worker/benchmarks/instructions.py
