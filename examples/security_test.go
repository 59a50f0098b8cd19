package examples_test

// TestSecurity reads every example program (type-checked, with go/ast and go/types) and fails on
// what would weaken a deployment of them:
//
//   - TLS to the API server (or anything) with verification off: a field Insecure or
//     InsecureSkipVerify set to anything but false, in code or tests;
//   - a rest.Config built by hand instead of loaded (clientcmd, rest.InClusterConfig), which
//     easily drops the CA, or sets Insecure later;
//   - listeners on a non-loopback address by default: a listener flag (its name contains
//     listen, addr, address, bind or port) whose default is not a loopback host:port, and a
//     constant non-loopback address given to net.Listen, http.ListenAndServe or http.Server;
//   - http.DefaultServeMux used or served (a nil handler), or net/http/pprof or expvar imported
//     for their side effect: that exposes whatever any package registers there;
//   - credentials in logs and errors: a rest.Config, its TLS settings, a kubeconfig, an Azure
//     credential or access token, or a field such as BearerToken, Password, KeyData, Token or
//     ClientSecret passed to fmt, log, log/slog or klog.
//
// See SECURITY.md for what is checked elsewhere and what is left to the operator.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// listPackage is the part of `go list -json` the test reads.
type listPackage struct {
	ImportPath   string
	Dir          string
	Export       string
	GoFiles      []string
	CgoFiles     []string
	TestGoFiles  []string
	XTestGoFiles []string
	DepOnly      bool
	Error        *struct{ Err string }
}

// examplePackages lists the example packages and, for the importer, the export data of
// everything they depend on.
func examplePackages(t *testing.T) (roots []*listPackage, export map[string]string) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the security check needs the go command under CI: %v", err)
		}
		t.Skipf("skipping the security check: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), gobin, "list", "-e", "-export", "-deps", "-json", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	export = map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Export != "" {
			export[p.ImportPath] = p.Export
		}
		if p.DepOnly || len(p.GoFiles)+len(p.CgoFiles) == 0 {
			continue // this directory's test-only package, or a dependency
		}
		if p.Error != nil {
			t.Fatalf("example package %s does not load: %s", p.ImportPath, p.Error.Err)
		}
		roots = append(roots, &p)
	}
	if len(roots) == 0 {
		t.Fatal("go list found no example packages")
	}
	return roots, export
}

// checker holds the type information of one package and collects findings.
type checker struct {
	fset     *token.FileSet
	info     *types.Info
	findings []string
}

func (c *checker) report(n ast.Node, format string, args ...any) {
	pos := c.fset.Position(n.Pos())
	c.findings = append(c.findings, fmt.Sprintf("%s:%d: %s", filepath.ToSlash(relPath(pos.Filename)), pos.Line, fmt.Sprintf(format, args...)))
}

func relPath(name string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, name); err == nil {
			return r
		}
	}
	return name
}

// typeCheck parses and type-checks files as one package, importing from export data.
func typeCheck(fset *token.FileSet, path string, files []*ast.File, export map[string]string) (*types.Info, error) {
	info := &types.Info{
		Types: map[ast.Expr]types.TypeAndValue{},
		Uses:  map[*ast.Ident]types.Object{},
		Defs:  map[*ast.Ident]types.Object{},
	}
	var errs []error
	conf := types.Config{
		Importer: importer.ForCompiler(fset, "gc", func(p string) (io.ReadCloser, error) {
			f, ok := export[p]
			if !ok {
				return nil, fmt.Errorf("no export data for %s", p)
			}
			return os.Open(f)
		}),
		Error: func(err error) { errs = append(errs, err) },
	}
	_, _ = conf.Check(path, fset, files, info)
	return info, errors.Join(errs...)
}

// insecureFields are the fields that turn TLS verification off.
var insecureFields = []string{"Insecure", "InsecureSkipVerify"}

// checkInsecure reports TLS verification turned off. It needs no type information beyond
// constants, so it also runs on test files (info may be nil: then only literal false passes).
func checkInsecure(c *checker, f *ast.File) {
	isFalse := func(e ast.Expr) bool {
		if c.info != nil {
			if tv, ok := c.info.Types[e]; ok && tv.Value != nil {
				return tv.Value.Kind() == constant.Bool && !constant.BoolVal(tv.Value)
			}
		}
		id, ok := ast.Unparen(e).(*ast.Ident)
		return ok && id.Name == "false"
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.KeyValueExpr:
			if k, ok := n.Key.(*ast.Ident); ok && slices.Contains(insecureFields, k.Name) && !isFalse(n.Value) {
				c.report(n, "%s set: TLS verification must stay on", k.Name)
			}
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				sel, ok := lhs.(*ast.SelectorExpr)
				if !ok || !slices.Contains(insecureFields, sel.Sel.Name) {
					continue
				}
				if len(n.Rhs) != len(n.Lhs) || !isFalse(n.Rhs[i]) {
					c.report(n, "%s set: TLS verification must stay on", sel.Sel.Name)
				}
			}
		}
		return true
	})
}

const (
	restPkg = "k8s.io/client-go/rest"
	httpPkg = "net/http"
	netPkg  = "net"
)

// listenerFlag matches the names of flags that configure a listening address.
var listenerFlag = regexp.MustCompile(`(^|-)(listen|addr|address|bind|port)($|-)`)

// callee returns the package path and name of the function or method a call calls, with the
// receiver's type name for methods ("FlagSet.StringVar"); "" for anything else.
func (c *checker) callee(call *ast.CallExpr) (pkg, name string) {
	var id *ast.Ident
	switch fn := ast.Unparen(call.Fun).(type) {
	case *ast.Ident:
		id = fn
	case *ast.SelectorExpr:
		id = fn.Sel
	default:
		return "", ""
	}
	f, ok := c.info.Uses[id].(*types.Func)
	if !ok || f.Pkg() == nil {
		return "", ""
	}
	name = f.Name()
	if recv := f.Signature().Recv(); recv != nil {
		t := recv.Type()
		if p, ok := t.(*types.Pointer); ok {
			t = p.Elem()
		}
		if n, ok := t.(*types.Named); ok {
			name = n.Obj().Name() + "." + name
		}
	}
	return f.Pkg().Path(), name
}

// constString returns e's value if it is a string constant.
func (c *checker) constString(e ast.Expr) (string, bool) {
	tv, ok := c.info.Types[e]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", false
	}
	return constant.StringVal(tv.Value), true
}

// loopback reports why addr is not a loopback host:port, or nil.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("host %q is not an address", host)
	}
	if !a.IsLoopback() {
		return fmt.Errorf("host %q is not a loopback address", host)
	}
	return nil
}

// isNil reports the untyped nil.
func (c *checker) isNil(e ast.Expr) bool {
	tv, ok := c.info.Types[e]
	return ok && tv.IsNil()
}

// namedIn reports whether t (or what it points to) is a named type of package pkg, with one of
// names (any name when names is empty).
func namedIn(t types.Type, pkg string, names ...string) bool {
	for {
		p, ok := t.(*types.Pointer)
		if !ok {
			break
		}
		t = p.Elem()
	}
	n, ok := t.(*types.Named)
	if !ok || n.Obj().Pkg() == nil || n.Obj().Pkg().Path() != pkg {
		return false
	}
	return len(names) == 0 || slices.Contains(names, n.Obj().Name())
}

// secretFields are fields whose value is a credential.
var secretFields = []string{"BearerToken", "Password", "KeyData", "CertData", "Token", "ClientSecret", "AccessToken", "RefreshToken"}

// secret says why the argument e must not be logged, or "".
func (c *checker) secret(e ast.Expr) string {
	t := c.info.TypeOf(e)
	x := ast.Unparen(e)
	if u, ok := x.(*ast.UnaryExpr); ok && u.Op == token.AND {
		x = u.X
	}
	if s, ok := x.(*ast.StarExpr); ok {
		x = s.X
	}
	if sel, ok := x.(*ast.SelectorExpr); ok && slices.Contains(secretFields, sel.Sel.Name) {
		if _, isField := c.info.Uses[sel.Sel].(*types.Var); isField {
			return "the credential field " + sel.Sel.Name
		}
	}
	switch {
	case t == nil:
		return ""
	case namedIn(t, restPkg, "Config", "TLSClientConfig"):
		return "a " + t.String() + " (it holds the bearer token and client key)"
	case namedIn(t, "k8s.io/client-go/tools/clientcmd/api", "Config", "AuthInfo"):
		return "a kubeconfig (" + t.String() + ")"
	case namedIn(t, "github.com/Azure/azure-sdk-for-go/sdk/azcore", "AccessToken", "TokenCredential"),
		namedIn(t, "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy", "TokenRequestOptions"),
		namedIn(t, "github.com/Azure/azure-sdk-for-go/sdk/azidentity"):
		return "an Azure credential (" + t.String() + ")"
	}
	return ""
}

// printers are the functions whose arguments end up in logs, output or error messages, by
// package; "" matches every function of the package.
var printers = map[string][]string{
	"fmt":                   {"Print", "Printf", "Println", "Sprint", "Sprintf", "Sprintln", "Fprint", "Fprintf", "Fprintln", "Errorf", "Append", "Appendf", "Appendln"},
	"log":                   {""},
	"log/slog":              {""},
	"k8s.io/klog/v2":        {""},
	"github.com/pkg/errors": {""},
}

// checkTyped runs the checks that need type information on one non-test file.
func checkTyped(c *checker, f *ast.File) {
	for _, imp := range f.Imports {
		if imp.Name != nil && imp.Name.Name == "_" && (imp.Path.Value == `"net/http/pprof"` || imp.Path.Value == `"expvar"`) {
			c.report(imp, "imports %s for its handlers on http.DefaultServeMux: mount them on the program's own mux", imp.Path.Value)
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if v, ok := c.info.Uses[n.Sel].(*types.Var); ok && v.Pkg() != nil && v.Pkg().Path() == httpPkg && v.Name() == "DefaultServeMux" {
				c.report(n, "uses http.DefaultServeMux, where imported packages register handlers (net/http/pprof, expvar)")
			}
		case *ast.CompositeLit:
			t := c.info.TypeOf(n)
			if t == nil {
				return true
			}
			if namedIn(t, restPkg, "Config") {
				c.report(n, "builds a rest.Config by hand: load it with clientcmd or rest.InClusterConfig, which keep the CA and TLS verification")
			}
			if namedIn(t, httpPkg, "Server") {
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					k, _ := kv.Key.(*ast.Ident)
					if k != nil && k.Name == "Addr" {
						if s, ok := c.constString(kv.Value); ok {
							if err := loopback(s); err != nil {
								c.report(kv, "http.Server listens on %q: %v", s, err)
							}
						}
					}
					if k != nil && k.Name == "Handler" && c.isNil(kv.Value) {
						c.report(kv, "http.Server serves http.DefaultServeMux (nil Handler)")
					}
				}
			}
		case *ast.CallExpr:
			c.checkCall(n)
		}
		return true
	})
}

func (c *checker) checkCall(call *ast.CallExpr) {
	pkg, name := c.callee(call)
	arg := func(i int) ast.Expr {
		if i < len(call.Args) {
			return call.Args[i]
		}
		return nil
	}
	constAddr := func(e ast.Expr, what string) {
		if e == nil {
			return
		}
		if s, ok := c.constString(e); ok {
			if err := loopback(s); err != nil {
				c.report(call, "%s on %q: %v", what, s, err)
			}
		}
	}
	switch {
	case pkg == netPkg && (name == "Listen" || name == "ListenPacket" || name == "ListenConfig.Listen" || name == "ListenConfig.ListenPacket"):
		i := 1
		if strings.HasPrefix(name, "ListenConfig.") {
			i = 2
		}
		constAddr(arg(i), "net."+name)
	case pkg == httpPkg && (name == "ListenAndServe" || name == "ListenAndServeTLS"):
		constAddr(arg(0), "http."+name)
		if h := arg(len(call.Args) - 1); h != nil && c.isNil(h) {
			c.report(call, "http.%s serves http.DefaultServeMux (nil handler)", name)
		}
	case pkg == httpPkg && (name == "Serve" || name == "ServeTLS"):
		if h := arg(1); h != nil && c.isNil(h) {
			c.report(call, "http.%s serves http.DefaultServeMux (nil handler)", name)
		}
	case pkg == "flag":
		c.checkFlag(call, strings.TrimPrefix(name, "FlagSet."))
	}
	if names, ok := printers[pkg]; ok && (slices.Contains(names, "") || slices.Contains(names, name)) {
		for _, a := range call.Args {
			if why := c.secret(a); why != "" {
				c.report(a, "%s.%s gets %s: credentials must not reach logs, output or errors", pkg, name, why)
			}
		}
	}
	// A method of a slog.Logger, log.Logger or similar is matched above by its package.
}

// checkFlag checks a flag definition of package flag (a FlagSet method or a package function,
// both with the same arguments): a listener flag must default to a loopback host:port given as a
// constant.
func (c *checker) checkFlag(call *ast.CallExpr, name string) {
	// The index of the name and of the default value among the arguments; -1: no default the
	// check can read.
	kinds := map[string][2]int{
		"String": {0, 1}, "StringVar": {1, 2},
		"Int": {0, -1}, "IntVar": {1, -1}, "Int64": {0, -1}, "Int64Var": {1, -1},
		"Uint": {0, -1}, "UintVar": {1, -1}, "Uint64": {0, -1}, "Uint64Var": {1, -1},
		"Var": {1, -1}, "TextVar": {1, -1}, "Func": {0, -1}, "BoolFunc": {0, -1},
	}
	k, ok := kinds[name]
	if !ok || k[0] >= len(call.Args) {
		return
	}
	nameArg, defArg := k[0], k[1]
	flagName, ok := c.constString(call.Args[nameArg])
	if !ok || !listenerFlag.MatchString(flagName) {
		return
	}
	if strings.HasPrefix(name, "Int") || strings.HasPrefix(name, "Uint") {
		c.report(call, "listener flag --%s takes a port only: take host:port with a loopback default, so the host is never all interfaces", flagName)
		return
	}
	if defArg < 0 {
		c.report(call, "listener flag --%s is defined with flag.%s: define it with String or StringVar so that its default can be checked", flagName, name)
		return
	}
	def, ok := c.constString(call.Args[defArg])
	if !ok {
		c.report(call, "listener flag --%s has a default that is not a constant", flagName)
		return
	}
	if err := loopback(def); err != nil {
		c.report(call, "listener flag --%s defaults to %q: %v", flagName, def, err)
	}
}

// checkPackage runs every check on one package: the typed ones on its files, the TLS one also on
// its tests.
func checkPackage(t *testing.T, p *listPackage, export map[string]string) []string {
	t.Helper()
	if len(p.CgoFiles) > 0 {
		t.Fatalf("%s uses cgo: the check cannot type-check it", p.ImportPath)
	}
	fset := token.NewFileSet()
	parse := func(names []string) []*ast.File {
		var out []*ast.File
		for _, n := range names {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, n), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			out = append(out, f)
		}
		return out
	}
	files := parse(p.GoFiles)
	info, err := typeCheck(fset, p.ImportPath, files, export)
	if err != nil {
		t.Fatalf("type-check %s: %v", p.ImportPath, err)
	}
	c := &checker{fset: fset, info: info}
	for _, f := range files {
		checkInsecure(c, f)
		checkTyped(c, f)
	}
	tc := &checker{fset: fset}
	for _, f := range parse(slices.Concat(p.TestGoFiles, p.XTestGoFiles)) {
		checkInsecure(tc, f)
	}
	return append(c.findings, tc.findings...)
}

func TestSecurity(t *testing.T) {
	roots, export := examplePackages(t)
	t.Run("checker finds planted problems", func(t *testing.T) {
		testChecker(t, export)
	})
	for _, p := range roots {
		t.Run(strings.TrimPrefix(p.ImportPath, "github.com/ceskit/ceskit/examples/"), func(t *testing.T) {
			for _, f := range checkPackage(t, p, export) {
				t.Error(f)
			}
		})
	}
}

// plantedSource has one problem of each kind the check looks for; plantedClean has none.
const (
	plantedSource = `package planted

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"k8s.io/client-go/rest"
)

func bad(fs *flag.FlagSet, cfg *rest.Config) {
	c := &rest.Config{Host: "https://example"}
	c.Insecure = true
	_ = &tls.Config{InsecureSkipVerify: true}
	_ = rest.TLSClientConfig{Insecure: true}
	fs.String("listen", ":8080", "")
	var a string
	fs.StringVar(&a, "metrics-addr", "0.0.0.0:9090", "")
	fs.Int("health-port", 8081, "")
	_, _ = net.Listen("tcp", ":9999")
	_ = http.ListenAndServe("127.0.0.1:1", nil)
	_ = &http.Server{Addr: "[::]:80", Handler: http.DefaultServeMux}
	slog.Info("connecting", "config", cfg)
	fmt.Printf("token %s\n", cfg.BearerToken)
	_ = fmt.Errorf("config %+v", *cfg)
}
`
	plantedClean = `package planted

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"k8s.io/client-go/rest"
)

func good(fs *flag.FlagSet, cfg *rest.Config) {
	c := rest.CopyConfig(cfg)
	c.Insecure = false
	fs.String("listen", "127.0.0.1:8080", "")
	var a string
	fs.StringVar(&a, "metrics-addr", "[::1]:9090", "")
	fs.StringVar(&a, "kubeconfig", "", "")
	_, _ = net.Listen("tcp", "localhost:0")
	_ = http.ListenAndServe(a, http.NewServeMux())
	slog.Info("connecting", "host", cfg.Host, "userAgent", c.UserAgent)
	_ = fmt.Errorf("connect to %s: %w", cfg.Host, fmt.Errorf("x"))
}
`
)

// testChecker proves the check is not vacuous: it finds every planted problem, and nothing in
// clean code.
func testChecker(t *testing.T, export map[string]string) {
	check := func(src string) []string {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "planted.go", src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		info, err := typeCheck(fset, "planted", []*ast.File{f}, export)
		if err != nil {
			t.Fatalf("type-check planted source: %v", err)
		}
		c := &checker{fset: fset, info: info}
		checkInsecure(c, f)
		checkTyped(c, f)
		return c.findings
	}
	got := check(plantedSource)
	want := []string{
		"planted.go:15: builds a rest.Config by hand",
		"planted.go:16: Insecure set",
		"planted.go:17: InsecureSkipVerify set",
		"planted.go:18: Insecure set",
		`planted.go:19: listener flag --listen defaults to ":8080"`,
		`planted.go:21: listener flag --metrics-addr defaults to "0.0.0.0:9090"`,
		"planted.go:22: listener flag --health-port takes a port only",
		`planted.go:23: net.Listen on ":9999"`,
		"planted.go:24: http.ListenAndServe serves http.DefaultServeMux",
		`planted.go:25: http.Server listens on "[::]:80"`,
		"planted.go:25: uses http.DefaultServeMux",
		"planted.go:26: log/slog.Info gets a *k8s.io/client-go/rest.Config",
		"planted.go:27: fmt.Printf gets the credential field BearerToken",
		"planted.go:28: fmt.Errorf gets a k8s.io/client-go/rest.Config",
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no finding %q; findings:\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d findings, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	if got := check(plantedClean); len(got) != 0 {
		t.Errorf("findings in clean code:\n%s", strings.Join(got, "\n"))
	}
}
