package identity_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ceskit/ceskit/identity"
)

// A pod's labels as Cilium's agent builds them, reduced to the
// security-relevant ones by the default filter; Key is what the allocator
// stores in the CiliumIdentity.
func ExamplePodLabels() {
	l, err := identity.PodLabels("shop",
		map[string]string{"app": "web", "pod-template-hash": "5d9f7c"},
		map[string]string{"kubernetes.io/metadata.name": "shop"},
		"web", "default")
	if err != nil {
		panic(err)
	}
	relevant, ignored := identity.DefaultFilter().Filter(l)
	fmt.Println("ignored:", ignored)
	fmt.Println(strings.ReplaceAll(relevant.Key(), ";", ";\n"))
	// Output:
	// ignored: k8s:pod-template-hash=5d9f7c
	// k8s:app=web;
	// k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop;
	// k8s:io.cilium.k8s.policy.cluster=default;
	// k8s:io.cilium.k8s.policy.serviceaccount=web;
	// k8s:io.kubernetes.pod.namespace=shop;
}

func ExampleParseLabel() {
	for _, s := range []string{"k8s:app=web", "$host", "app=web", "k8s:bad key=x"} {
		l, err := identity.ParseLabel(s)
		var le *identity.LabelError
		if errors.As(err, &le) {
			fmt.Printf("invalid %s %q (errors.Is ErrInvalidLabels: %v)\n", le.Field, le.Value, errors.Is(err, identity.ErrInvalidLabels))
			continue
		}
		fmt.Printf("source=%s key=%s value=%q -> %s\n", l.Source, l.Key, l.Value, l)
	}
	// Output:
	// source=k8s key=app value="web" -> k8s:app=web
	// source=reserved key=host value="" -> reserved:host
	// source=unspec key=app value="web" -> unspec:app=web
	// invalid key "bad key" (errors.Is ErrInvalidLabels: true)
}

func ExampleClusterRange() {
	for _, c := range []struct{ id, max uint32 }{{0, 255}, {1, 255}, {0, 511}, {3, 511}} {
		r, err := identity.ClusterRange(c.id, c.max)
		if err != nil {
			panic(err)
		}
		fmt.Printf("cluster %d of %d: %s (%d identities)\n", c.id, c.max, r, r.Size())
	}
	// Output:
	// cluster 0 of 255: 256-65535 (65280 identities)
	// cluster 1 of 255: 65536-131071 (65536 identities)
	// cluster 0 of 511: 256-32767 (32512 identities)
	// cluster 3 of 511: 98304-131071 (32768 identities)
}

func ExampleLocalAllocator() {
	a := identity.NewLocalAllocator()
	cidr, err := identity.ParseLabels("cidr:10.0.0.0/8", "reserved:world")
	if err != nil {
		panic(err)
	}
	id, isNew, err := a.Allocate(cidr)
	if err != nil {
		panic(err)
	}
	fmt.Println(id, id.Scope(), isNew)
	id, isNew, _ = a.Allocate(cidr)
	fmt.Println(id, isNew)
	fmt.Println(a.Release(id), a.Release(id), a.Len())

	_, _, err = a.Allocate(identity.Labels{{Source: identity.SourceK8s, Key: "app", Value: "web"}})
	fmt.Println(err)
	// Output:
	// 16777217 local true
	// 16777217 false
	// false true 0
	// allocate local identity: invalid label source "k8s": label k8s:app=web cannot be part of a local identity (only cidr, cidrgroup, fqdn and reserved)
}
