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

// version and buildTime are set at link time (-ldflags "-X main.version=v1.2.3
// -X main.buildTime=2026-12-05T10:00:00Z"); without a version the module
// version from the build info is used.
var version, buildTime string

// env is what a command may touch of the outside world. Tests substitute
// it, which is how they fix detected_at without a hidden flag.
type env struct {
	stdin          io.Reader
	stdout, stderr *output
	clock          func() time.Time
	// environ is the process's environment (os.Environ), which serve's
	// configuration reads SHRIKE_* variables from; nil reads none.
	environ func() []string
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
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: newOutput(os.Stdout), stderr: newOutput(os.Stderr), clock: time.Now, environ: os.Environ})
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status. A command
// that succeeded but could not write all of its stdout fails (status 1):
// its output is incomplete. A command that failed already is reported as
// it failed, and one that returned stdout's write error as it is gets the
// same words as the first. Errors writing stderr are not checked: there
// is nowhere left to report them.
func run(ctx context.Context, args []string, e env) int {
	root := newRootCmd(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	// err == werr is identity on purpose: an error that wraps the write
	// error ("gen: ...") already says what failed, a bare one does not.
	if werr := e.stdout.Err(); werr != nil && (err == nil || err == werr) { //nolint:errorlint // identity, see above
		err = fmt.Errorf("writing output: %w", werr)
	}
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
	root.AddCommand(newCheckCmd(e), newRunCmd(e), newExplainCmd(e), newDiffCmd(e), newDrawCmd(e))
	root.AddCommand(newTestCmd(e))
	root.AddCommand(newGenCmd(e))
	root.AddCommand(newServeCmd(e), newHealthCmd(e))
	root.AddCommand(newRulesCmd(e), newListsCmd(e), newAlertsCmd(e))
	return root
}

// buildVersion reports the version set at link time, else the module
// version the binary was built from, followed by the Go version and what
// the go command stamped of the checkout it built (go build and go run in
// a git checkout, unless -buildvcs=false): the revision, whether the tree
// had uncommitted changes, and the commit's time, then the link-time
// build time.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return formatVersion(version, buildTime, bi)
}

// formatVersion is buildVersion's text for a link-time version and build
// time and the binary's build info (nil when it has none).
func formatVersion(linked, built string, bi *debug.BuildInfo) string {
	id := identify(linked, bi)
	v := id.version
	var parts []string
	if id.goVersion != "" {
		parts = append(parts, id.goVersion)
	}
	if id.revision != "" {
		parts = append(parts, "commit "+id.revision)
		if id.modified {
			parts = append(parts, "modified")
		}
		if id.commitTime != "" {
			parts = append(parts, "committed "+id.commitTime)
		}
	}
	if built != "" {
		parts = append(parts, "built "+built)
	}
	if len(parts) > 0 {
		v += " (" + strings.Join(parts, ", ") + ")"
	}
	return v
}

// buildIdentity is what a binary says of its build: `shrike version`
// prints it and shrike_build_info labels it.
type buildIdentity struct {
	// version is the link-time version, else the module version, else
	// "devel".
	version string
	// goVersion is the Go release that built the binary; revision, its
	// commit's time and modified what the go command stamped of the
	// checkout (go build and go run in a git checkout, unless
	// -buildvcs=false). Empty when unknown.
	goVersion, revision, commitTime string
	modified                        bool
}

// identify reads the build identity from the link-time version and the
// binary's build info (nil when it has none).
func identify(linked string, bi *debug.BuildInfo) buildIdentity {
	id := buildIdentity{version: linked}
	if id.version == "" && bi != nil {
		id.version = bi.Main.Version
	}
	if id.version == "" || id.version == "(devel)" {
		id.version = "devel"
	}
	if bi == nil {
		return id
	}
	id.goVersion = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			id.revision = s.Value
		case "vcs.time":
			id.commitTime = s.Value
		case "vcs.modified":
			id.modified = s.Value == "true"
		}
	}
	return id
}
