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
# module ships in the main kamailio package). kamailio-sqlite-modules: the fleet test keeps kamailio's
# subscriber and location tables in a real database (SQLite).
APT_TEST := linphone-cli kamailio sip-tester baresip-core sipsak tshark espeak-ng flite sox sqlite3 \
	mtools dosfstools e2fsprogs fdisk nftables dnsmasq-base iproute2 libsrtp2-1 systemd \
	kamailio-tls-modules python3-setuptools-whl python3-pip-whl python3-wheel-whl \
	rtpengine-daemon python3-alsaaudio kamailio-sqlite-modules

.PHONY: run test bench lint clean image bundle binfmt binfmt-off test-pi system-run system-test venv venv-dev

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
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

bench: venv-dev
	$(BIN)/python -m tools.bench

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --diff .

# The image: BASE (Raspberry Pi OS Lite) plus Sotto and everything the phone needs for aarch64, built here
# in an arm64 bookworm chroot under qemu-user (tools/image/deviceenv.py), cached in PI_CACHE. Needs root.
APT_IMAGE := mtools e2fsprogs fdisk dosfstools mmdebstrap arch-test qemu-user-static binfmt-support
PI_CACHE ?= /var/cache/sotto-pi

image: venv
	$(call apt_install,$(APT_IMAGE))
	@test -n "$(BASE)" -a -n "$(OUT)" || { echo "make image BASE=raspios-lite.img OUT=sotto.img [CONFIG=phone.toml] [BOARD=name]"; exit 2; }
	@$(MAKE) --no-print-directory binfmt
	dist=$$($(BIN)/python -m tools.image.deviceenv --cache "$(PI_CACHE)") && \
	$(BIN)/python -m tools.image --base "$(BASE)" --out "$(OUT)" --dist "$$dist" $(if $(CONFIG),--config "$(CONFIG)") $(if $(BOARD),--board "$(BOARD)")

# An update for a phone that is running (no git checkout on it): the tree and the environment in one tar.
bundle: venv
	$(call apt_install,$(APT_IMAGE))
	@$(MAKE) --no-print-directory binfmt
	$(BIN)/python -m tools.image.deviceenv --cache "$(PI_CACHE)" --bundle "$(or $(OUT),sotto-update.tar)"

# aarch64 programs through qemu-user (binfmt_misc), for the image build; binfmt-off undoes it.
binfmt:
	@$(call apt_install,qemu-user-static binfmt-support)
	@mountpoint -q /proc/sys/fs/binfmt_misc || $(SUDO) mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	@grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || $(SUDO) update-binfmts --enable qemu-aarch64

binfmt-off:
	@if grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then $(SUDO) update-binfmts --disable qemu-aarch64; fi

# tests/pi: the phone on aarch64 (run by .ci/run after make test). test_device_env.py: the device
# environment that `make image` builds goes through first boot's offline installation in an arm64 root
# under qemu-user, and that phone takes a secure call from here. test_virtual_pi.py: the virtual
# Raspberry Pi, the image booted under qemu-system-aarch64 (virt machine, Debian's arm64 kernel from the
# image), first boot, READY under the shipped sandbox, the watchdog, a secure call with the simulated
# board, and the real board path (rpi-lgpio on gpio-sim, smbus2 on i2c-stub; both simulators built as
# modules for the image's kernel by tests/pi/kmods.py). Caches the chroot, the environment, the base
# image and the modules in PI_CACHE (a cold base and modules add about 10-12 minutes on 2 cores). binfmt_misc is set
# up for the run and undone afterwards when it was not on before.
APT_PI := $(APT_IMAGE) qemu-system-arm iproute2 xz-utils
PI_TESTS ?= tests/pi

test-pi: venv-dev
	$(call apt_install,$(APT_PI))
	@was_on=$$(grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null && echo yes); \
	$(MAKE) --no-print-directory binfmt || exit 1; \
	SOTTO_PI_CACHE="$(PI_CACHE)" $(BIN)/python -m pytest $(PI_TESTS) -v -s -p no:cacheprovider; rc=$$?; \
	if [ -z "$$was_on" ]; then $(MAKE) --no-print-directory binfmt-off; fi; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
