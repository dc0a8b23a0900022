# Shortcuts for the commands the READMEs give. Each target runs the plain
# commands below, so make is never needed: it only saves typing. Pass flags with
# ARGS, e.g. make bench ARGS='-rows 4 -out /tmp/b4'.

GO ?= go

.PHONY: build test bench

# Release binaries and packages into dist/ (see docs/install.md).
build:
	$(GO) run ./packaging/build $(ARGS)

# The README's test command: installs the Debian packages the tests need
# (as root), then gofmt, vet and every test. The e2e lab needs root.
test:
	./.ci/run

# The benchmarks against the stock Tailscale pieces (see bench/README.md).
bench:
	$(GO) run ./bench $(ARGS)
