package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes of run.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line is wrong
)

// run runs the command line args (without the program name), writing output
// to stdout and messages to stderr, and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	global, args, err := parseGlobal(args)
	var cmd *command
	var rest []string
	if err == nil {
		cmd, rest, err = lookup(cmds, args)
	}
	if err != nil {
		return usageFailure(stderr, "homenet", err, func(w io.Writer) { printTopUsage(w, cmds) })
	}
	inv := &invocation{stdout: stdout, stderr: stderr, now: time.Now(), cmds: cmds}
	fs := cmd.flagSet(&inv.opts)
	usage := func(w io.Writer) { cmd.printUsage(w, fs) }
	applyGlobal(global, fs)
	inv.args, err = parseInterleaved(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return exitOK
	}
	if err == nil {
		err = cmd.checkArgs(inv.args)
	}
	if err == nil {
		err = cmd.exec(ctx, inv)
	}
	if err == nil {
		return exitOK
	}
	if _, ok := errors.AsType[*usageError](err); ok {
		return usageFailure(stderr, "homenet "+cmd.name, err, usage)
	}
	if _, ok := errors.AsType[*reportedError](err); !ok {
		fmt.Fprintf(stderr, "homenet: %v\n", err)
	}
	return exitError
}

// usageFailure reports a usage error as a one-line reason prefixed with who,
// then usage (or the usage the error carries), and returns exitUsage.
func usageFailure(stderr io.Writer, who string, err error, usage func(io.Writer)) int {
	fmt.Fprintf(stderr, "%s: %v\n\n", who, err)
	if ue, ok := errors.AsType[*usageError](err); ok && ue.usage != nil {
		usage = ue.usage
	}
	usage(stderr)
	return exitUsage
}

// usageError is a mistake on the command line, reported with exit code 2
// and the usage of the command (or usage, when set).
type usageError struct {
	msg   string
	usage func(io.Writer)
}

func (e *usageError) Error() string { return e.msg }

// usageErrorf returns a *usageError with the formatted message.
func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// reportedError is a failure the command has reported already, such as
// serve --json in a JSON log line; run exits 1 without printing it again.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }
