# Shortcuts for the commands the READMEs give. Each target runs the plain
# commands below, so make is never needed: it only saves typing. Pass flags with
# ARGS, e.g. make bench ARGS='-rows 4 -out /tmp/b4'.

GO ?= go

.PHONY: build test bench

# Release binaries and packages into dist/ (see docs/install.md).
build:
	$(GO) run ./packaging/build $(ARGS)

# The checks of .ci/run (the README's test command) without its package
# installs: formatting, vet, then every test. The e2e lab tests need root
# and skip without it.
test:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	$(GO) test -timeout 75m $(ARGS) ./...

# The benchmarks against the stock Tailscale pieces (see bench/README.md).
bench:
	$(GO) run ./bench $(ARGS)
