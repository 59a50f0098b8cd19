//go:build tools

// Package tools pins the code generators ceskit runs (hack/codegen.sh), in a module of their own so
// that the library's go.mod stays lean.
package tools

import _ "sigs.k8s.io/controller-tools/cmd/controller-gen"
