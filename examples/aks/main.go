// Command aks plans and applies AKS clusters with Azure CNI powered by Cilium through ceskit's
// azure package, with the network flags of az aks create:
//
//	aks validate  [flags]   check a cluster spec; print every problem
//	aks plan      [flags]   print the ARM requests that create or update the cluster
//	aks apply     [flags]   send them, resumably
//	aks export    [flags]   print an ARM template of the cluster
//
// The cluster is described by az-style flags (-g, -n, --network-plugin azure
// --network-plugin-mode overlay --network-dataplane cilium, --enable-acns, …), optionally on top
// of a ClusterSpec JSON file (--spec). plan and apply compare it with the current cluster, read
// from a file (--current, `az aks show -o json` output) or from Azure (--live); without either
// they plan a create. See README.md for every flag, the flag to ARM field mapping and the exit
// codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
)

// Exit codes.
const (
	exitOK = 0
	// exitFailed: the spec is invalid, or reading, planning or applying failed.
	exitFailed = 1
	// exitUsage: the command line is wrong, or apply refused a disruptive plan without --yes.
	exitUsage = 2
)

// deps are what run takes from its environment; tests replace them.
type deps struct {
	// ClientOptions are passed to azure.NewClients; its Transport is where tests plug in the
	// SDK's fake servers. Nil: the SDK's defaults.
	ClientOptions *arm.ClientOptions
	// Credential, when set, is used instead of the one azure.NewCredential builds from the
	// flags.
	Credential azcore.TokenCredential
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// HomeDir returns the user's home directory; nil means os.UserHomeDir.
	HomeDir func() (string, error)
}

func (d deps) getenv(k string) string {
	if d.Getenv == nil {
		return os.Getenv(k)
	}
	return d.Getenv(k)
}

// defaultResumeDir is $XDG_STATE_HOME/ceskit-aks, else ~/.local/state/ceskit-aks.
func (d deps) defaultResumeDir() string {
	if s := d.getenv("XDG_STATE_HOME"); s != "" {
		return filepath.Join(s, "ceskit-aks")
	}
	home := os.UserHomeDir
	if d.HomeDir != nil {
		home = d.HomeDir
	}
	h, err := home()
	if err != nil || h == "" {
		return filepath.Join(os.TempDir(), "ceskit-aks")
	}
	return filepath.Join(h, ".local", "state", "ceskit-aks")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal (which cancels an apply, keeping its resume tokens), a second one
	// kills the process at once.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, deps{})
	stop()
	os.Exit(code)
}

const usageText = `Usage: aks <command> [flags]

Plans and applies AKS clusters with Azure CNI powered by Cilium (github.com/ceskit/ceskit/azure).

Commands:
  validate   check the cluster spec; print every problem (exit 1 when any)
  plan       print the ARM requests that create the cluster, or update the current one
  apply      send the plan's requests in order, resumably
  export     print an ARM deployment template of the cluster

Run "aks <command> --help" for the command's flags.
`

// run runs the command line args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, env deps) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	var cmd func(context.Context, []string, io.Writer, io.Writer, deps) error
	switch args[0] {
	case "validate":
		cmd = runValidate
	case "plan":
		cmd = runPlan
	case "apply":
		cmd = runApply
	case "export":
		cmd = runExport
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "aks: unknown command %q\n\n%s", args[0], usageText)
		return exitUsage
	}
	err := cmd(ctx, args[1:], stdout, stderr, env)
	var ue *usageError
	var ee exitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ee):
		return int(ee)
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "aks %s: %v\n", args[0], err)
		return exitUsage
	case isFlagError(err):
		return exitUsage // the flag package printed the error and the usage
	default:
		fmt.Fprintf(stderr, "aks %s: %v\n", args[0], err)
		return exitFailed
	}
}

// exitError ends a command with an exit code after the command printed why.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// flagError marks an error of flag parsing, which the flag package has already printed.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

func isFlagError(err error) bool {
	var fe flagError
	return errors.As(err, &fe)
}

// parse parses args with fs, marking its errors as already printed.
func parse(fs *flagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return flagError{err}
	}
	return nil
}
