package ciliumv2alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SchemeGroupVersion is the group and version of the types in this package: cilium.io/v2alpha1.
var SchemeGroupVersion = schema.GroupVersion{Group: "cilium.io", Version: "v2alpha1"}

// Resource returns the group-qualified resource for a plural resource name, e.g.
// Resource("ciliumendpointslices").
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

// AddToScheme registers the types of this package with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &CiliumEndpointSlice{}, &CiliumEndpointSliceList{})
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
