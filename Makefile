# Sotto: every set-up step lives here (DESIGN.md): Debian packages with apt-get, Python packages into .venv.
# `make run` runs the phone on the simulated board; `make test` runs the whole suite.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# What the phone needs at run time (pyalsaaudio compiles against libasound2-dev; Opus is libopus0).
APT_RUN := python3-venv python3-dev build-essential libasound2-dev libopus0
# What the tests need besides: real peers, audio tools, image tools (../shared/INTEROP.md).
# rtpengine-daemon is the carrier stack's media relay, run in userspace only (kamailio's rtpengine
# module ships in the main kamailio package).
APT_TEST := linphone-cli kamailio sip-tester baresip-core sipsak tshark espeak-ng flite sox sqlite3 \
	mtools dosfstools e2fsprogs fdisk nftables dnsmasq-base iproute2 libsrtp2-1 systemd \
	kamailio-tls-modules python3-setuptools-whl python3-pip-whl python3-wheel-whl \
	rtpengine-daemon python3-alsaaudio

.PHONY: run test bench lint clean image system-run system-test venv venv-dev

# Install only the Debian packages that are missing, so a prepared machine needs no network.
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt-get install:" $$missing; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

system-run:
	$(call apt_install,$(APT_RUN))

system-test: system-run
	$(call apt_install,$(APT_TEST))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.run-installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.run-installed
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

venv: system-run $(VENV)/.run-installed

venv-dev: system-test $(VENV)/.dev-installed

# The phone on the simulated board with the embedded default configuration.
run: venv
	$(BIN)/sotto run $(ARGS)

# The whole suite: unit, property, pair, interop with real peers, MicroPython. pytest's exit code 5
# (no tests collected) is a failure here.
test: venv-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

bench: venv-dev
	$(BIN)/python -m tools.bench

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --diff . || true

image: venv
	$(call apt_install,mtools e2fsprogs fdisk)
	$(BIN)/python -m tools.image --base "$(BASE)" --out "$(OUT)" $(if $(CONFIG),--config "$(CONFIG)") $(if $(BOARD),--board "$(BOARD)")

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
