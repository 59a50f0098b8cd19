package discovery

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fakeResources answers ServerResourcesForGroupVersion from a map, or with err.
type fakeResources struct {
	lists map[string][]string
	err   error
}

func (f fakeResources) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	if f.err != nil {
		return nil, f.err
	}
	names, ok := f.lists[gv]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{}, gv)
	}
	list := &metav1.APIResourceList{GroupVersion: gv}
	for _, n := range names {
		list.APIResources = append(list.APIResources, metav1.APIResource{Name: n})
	}
	return list, nil
}

func (fakeResources) ServerGroupsAndResources() ([]*metav1.APIGroup, []*metav1.APIResourceList, error) {
	return nil, nil, errors.New("not used")
}

func (fakeResources) ServerPreferredResources() ([]*metav1.APIResourceList, error) {
	return nil, errors.New("not used")
}

func (fakeResources) ServerPreferredNamespacedResources() ([]*metav1.APIResourceList, error) {
	return nil, errors.New("not used")
}

func TestServed(t *testing.T) {
	d := fakeResources{lists: map[string][]string{"cilium.io/v2": {"ciliumendpoints", "ciliumidentities"}}}
	for _, tt := range []struct {
		gv, resource string
		want         bool
	}{
		{"cilium.io/v2", "ciliumendpoints", true},
		{"cilium.io/v2", "ciliumnetworkpolicies", false},
		{"cilium.io/v2alpha1", "ciliumendpointslices", false}, // group version unknown: not served
	} {
		got, err := Served(d, tt.gv, tt.resource)
		if err != nil || got != tt.want {
			t.Errorf("Served(%s, %s) = %v, %v; want %v", tt.gv, tt.resource, got, err, tt.want)
		}
	}
	m, err := ServedOf(d, "cilium.io/v2", "ciliumendpoints", "ciliumidentities", "ciliumnodes")
	if err != nil || len(m) != 2 || !m["ciliumendpoints"] || !m["ciliumidentities"] {
		t.Errorf("ServedOf = %v, %v", m, err)
	}
	_, err = Served(fakeResources{err: apierrors.NewInternalError(errors.New("etcd down"))}, "cilium.io/v2", "ciliumendpoints")
	if err == nil || !strings.Contains(err.Error(), "discover cilium.io/v2") || !apierrors.IsInternalError(err) {
		t.Errorf("a failed read = %v, want an error naming the group version and wrapping the cause", err)
	}
}
