package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); without
// it the module version from the build info is used.
var version string

// env is what a command may touch of the outside world. Tests substitute
// it, which is how they fix detected_at without a hidden flag.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	clock          func() time.Time
}

// errReported is returned by a command that has already told the user what
// went wrong: main only sets the exit status.
var errReported = errors.New("reported")

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, clock: time.Now})
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, e env) int {
	root := newRootCmd(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var uerr usageError
	var status exitStatus
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errReported):
		return 1
	case errors.As(err, &status):
		return int(status)
	case errors.As(err, &uerr) || isCobraUsageError(err):
		fmt.Fprintf(e.stderr, "shrike: %v\nRun 'shrike --help' for usage.\n", err)
		return 2
	default:
		fmt.Fprintf(e.stderr, "shrike: %v\n", err)
		return 1
	}
}

// isCobraUsageError recognises cobra's errors for an unknown subcommand and
// a missing required flag, which it does not type.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command ") || strings.HasPrefix(msg, "required flag")
}

// argsAtLeast is cobra.MinimumNArgs with a usage error.
func argsAtLeast(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < n {
			return usageError{fmt.Errorf("missing %s", what)}
		}
		return nil
	}
}

func newRootCmd(e env) *cobra.Command {
	root := &cobra.Command{
		Use:   "shrike",
		Short: "Shrike is a complex event processing rules engine",
		Long: `Shrike matches single-event conditions and multi-step sequence patterns,
written as rulesets in YAML with CEL expressions, over keyed event streams.`,
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		// Later subcommands (serve, test, rules, alerts, gen) join here.
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetVersionTemplate("shrike {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newCheckCmd(e), newRunCmd(e))
	root.AddCommand(newTestCmd(e))
	root.AddCommand(newGenCmd(e))
	root.AddCommand(newServeCmd(e))
	root.AddCommand(newRulesCmd(e), newAlertsCmd(e))
	return root
}

// buildVersion reports the version set at link time, else the module
// version the binary was built from, with the Go version.
func buildVersion() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" && ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	if ok {
		v += " (" + bi.GoVersion + ")"
	}
	return v
}
