// Package discovery answers the one discovery question ceskit's components ask before they
// start informers: does the API server serve this resource? A group version the server does not
// know serves nothing; that is an answer, not an error. Errors are failed reads (the server
// unreachable, a 5xx), which callers retry or report.
package discovery

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8sdiscovery "k8s.io/client-go/discovery"
)

// Served reports whether the API server serves resource (plural, lower case, as in URLs) in
// group version gv ("cilium.io/v2").
func Served(d k8sdiscovery.ServerResourcesInterface, gv, resource string) (bool, error) {
	m, err := ServedOf(d, gv, resource)
	return m[resource], err
}

// ServedOf reports which of resources the API server serves in group version gv; the map holds
// true for each one served.
func ServedOf(d k8sdiscovery.ServerResourcesInterface, gv string, resources ...string) (map[string]bool, error) {
	out := map[string]bool{}
	list, err := d.ServerResourcesForGroupVersion(gv)
	if apierrors.IsNotFound(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", gv, err)
	}
	for _, r := range list.APIResources {
		for _, want := range resources {
			if r.Name == want {
				out[want] = true
			}
		}
	}
	return out, nil
}
