# lbagent: build, test, demo and install. `make help` lists the targets.
CARGO   ?= cargo
TARGET  ?= x86_64-unknown-linux-gnu
DESTDIR ?=
STATIC_BIN := target/$(TARGET)/release/lbagent

.PHONY: help build release deb test api-fuzz bench fuzz fuzz-smoke demo demo-stop lint install clean

help:
	@echo "targets: build release deb test api-fuzz bench fuzz fuzz-smoke demo demo-stop lint install clean"

build:
	$(CARGO) build

# Static, stripped release binary (DESIGN section 10). Naming --target keeps the static flag off
# build scripts and proc-macros.
release:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target $(TARGET)
	@file $(STATIC_BIN) 2>/dev/null || true
	@echo "size: $$(stat -c %s $(STATIC_BIN)) bytes ($(STATIC_BIN))"

# target/debian/lbagent_<version>_<arch>.deb with the static binary (scripts/make-deb: dpkg-deb).
deb: release
	scripts/make-deb $(STATIC_BIN) target/debian

# Installs what the tests need when it is missing (as root on Debian/Ubuntu; otherwise it names it).
test:
	scripts/test-deps
	$(CARGO) test --all-targets

# The API fuzzed from openapi.json by schemathesis (PyPI) against the agent and a real HAProxy:
# API_FUZZ_SECONDS of it (.ci/run runs 150).
API_FUZZ_SECONDS ?= 900
api-fuzz: build
	scripts/api-fuzz $(API_FUZZ_SECONDS)

# Footprint and speed against the floor, HApi's way and the Octavia agent: bench/results.md
# (and .json). Installs what it lacks (as root); a few minutes. Not run by CI.
bench:
	bench/run $(BENCH_ARGS)

# Every parser that takes outside bytes under libFuzzer (fuzz/run): FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run $(FUZZ_SECONDS)

# A few seconds of each target, as CI runs it.
fuzz-smoke:
	fuzz/run 5

# A real HAProxy on loopback and the agent over HTTPS with basic auth; leaves both running.
demo: release
	LBAGENT=$(STATIC_BIN) bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh stop

# cargo-deny (`cargo install --locked cargo-deny`, as .ci/run does): licenses, banned crates
# (OpenSSL, async runtimes) and sources; deny.toml says why advisories are not checked here.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	@command -v cargo-deny >/dev/null || { echo "lint: cargo-deny missing: cargo install --locked cargo-deny"; exit 1; }
	$(CARGO) deny check bans licenses sources

install: release
	install -D -m 0755 $(STATIC_BIN) $(DESTDIR)/usr/sbin/lbagent
	install -d -m 0755 $(DESTDIR)/etc/lbagent
	test -e $(DESTDIR)/etc/lbagent/lbagent.yaml || install -m 0600 conf/lbagent.yaml $(DESTDIR)/etc/lbagent/lbagent.yaml
	install -D -m 0755 scripts/lbagent.init $(DESTDIR)/etc/init.d/lbagent
	install -D -m 0644 scripts/lbagent.service $(DESTDIR)/lib/systemd/system/lbagent.service
	install -D -m 0644 scripts/lbagent.logrotate $(DESTDIR)/etc/logrotate.d/lbagent
	install -d -m 0750 $(DESTDIR)/var/lib/lbagent $(DESTDIR)/var/log/lbagent

clean:
	$(CARGO) clean
