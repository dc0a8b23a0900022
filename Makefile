# Shortcuts for the commands the READMEs give. Each target runs the plain
# commands below, so make is never needed: it only saves typing. Pass flags with
# ARGS, e.g. make bench ARGS='-rows 4 -out /tmp/b4'.

GO ?= go

.PHONY: build test bench fuzz

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

# Every fuzz target in turn, FUZZTIME each: 10^7 executions by default (hours;
# not in CI), or e.g. make fuzz FUZZTIME=30s. New inputs that fail land in each
# package's testdata/fuzz, where go test replays them.
FUZZTIME ?= 10000000x
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		pkg=$$(dirname $$f); \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
			echo "== $$pkg $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done
