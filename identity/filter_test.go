package identity

import (
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// isRelevant runs f over one label and reports whether it is relevant.
func isRelevant(t *testing.T, f *Filter, label string) bool {
	t.Helper()
	l, err := ParseLabels(label)
	if err != nil {
		t.Fatalf("ParseLabels(%q): %v", label, err)
	}
	rel, ign := f.Filter(l)
	if len(rel)+len(ign) != 1 {
		t.Fatalf("Filter(%q) returned %d relevant and %d ignored labels", label, len(rel), len(ign))
	}
	return len(rel) == 1
}

func TestDefaultFilter(t *testing.T) {
	tests := []struct {
		label string
		keep  bool
	}{
		{"k8s:app=web", true},
		{"k8s:io.kubernetes.pod.namespace=shop", true},
		{"k8s:io.cilium.k8s.namespace.labels.team=a", true},
		{"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop", true},
		{"k8s:io.cilium.k8s.policy.serviceaccount=web", true},
		{"k8s:io.cilium.k8s.policy.cluster=default", true},
		{"k8s:app.kubernetes.io/name=web", true},
		{"k8s:app.kubernetes.io/part-of=shop", true},
		{"k8s:job-name=backup", true},
		{"container:app=web", true},
		{"reserved:host", true},
		{"reserved:world", true},
		{"k8s:pod-template-hash=5d9f7c", false},
		{"k8s:pod-template-generation=3", false},
		{"k8s:controller-revision-hash=7b8d", false},
		{"k8s:controller-uid=0b0f2f3e", false},
		{"k8s:statefulset.kubernetes.io/pod-name=db-0", false},
		{"k8s:apps.kubernetes.io/pod-index=0", false},
		{"k8s:batch.kubernetes.io/job-completion-index=4", false},
		{"k8s:batch.kubernetes.io/controller-uid=0b0f2f3e", false},
		{"k8s:topology.kubernetes.io/zone=westeurope-1", false},
		{"k8s:topology.kubernetes.io/region=westeurope", false},
		{"k8s:kubernetes.io/hostname=node-1", false},
		{"k8s:beta.kubernetes.io/arch=amd64", false},
		{"k8s:failure-domain.beta.kubernetes.io/zone=1", false},
		{"k8s:k8s.io/foo=bar", false},
		{"k8s:io.kubernetes.container.name=web", false},
		{"k8s:etcd_node=etcd-0", false},
		{"container:annotation.etcd.version=3", false},
		{"k8s:annotations=x", false},
	}
	f := DefaultFilter()
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			if got := isRelevant(t, f, tt.label); got != tt.keep {
				t.Errorf("relevant = %v, want %v", got, tt.keep)
			}
		})
	}
}

func TestDefaultFilterPodLabels(t *testing.T) {
	pod, err := PodLabels("shop",
		map[string]string{
			"app":                                "web",
			"app.kubernetes.io/version":          "1.2",
			"pod-template-hash":                  "5d9f7c",
			"statefulset.kubernetes.io/pod-name": "web-0",
			"topology.kubernetes.io/zone":        "z1",
		},
		map[string]string{"kubernetes.io/metadata.name": "shop"}, "web", "default")
	if err != nil {
		t.Fatal(err)
	}
	rel, ign := DefaultFilter().Filter(pod)
	wantRel, _ := ParseLabels(
		"k8s:app=web",
		"k8s:app.kubernetes.io/version=1.2",
		"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
		"k8s:io.cilium.k8s.policy.cluster=default",
		"k8s:io.cilium.k8s.policy.serviceaccount=web",
		"k8s:io.kubernetes.pod.namespace=shop",
	)
	wantIgn, _ := ParseLabels(
		"k8s:pod-template-hash=5d9f7c",
		"k8s:statefulset.kubernetes.io/pod-name=web-0",
		"k8s:topology.kubernetes.io/zone=z1",
	)
	if diff := cmp.Diff(wantRel, rel); diff != "" {
		t.Errorf("relevant (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantIgn, ign); diff != "" {
		t.Errorf("ignored (-want +got):\n%s", diff)
	}
}

func TestFilterConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  FilterConfig
		keep map[string]bool
	}{
		{
			name: "include switches to include-only mode",
			cfg:  FilterConfig{Include: []string{"k8s:app"}},
			keep: map[string]bool{
				"k8s:app=web":                          true,
				"k8s:application=x":                    true, // prefix match
				"k8s:tier=web":                         false,
				"container:app=web":                    false, // source must match
				"k8s:io.kubernetes.pod.namespace=shop": true,  // default includes still count
				"reserved:host":                        true,
				"k8s:pod-template-hash=x":              false,
			},
		},
		{
			name: "exclude alone keeps other labels",
			cfg:  FilterConfig{Exclude: []string{"!tier", "k8s:!version", "k8s:commit"}},
			keep: map[string]bool{
				"k8s:app=web":     true,
				"k8s:tier=web":    false,
				"k8s:version=1":   false,
				"k8s:commit=abc":  false,
				"container:app=1": true,
			},
		},
		{
			name: "include-only without defaults",
			cfg:  FilterConfig{Include: []string{`kubernetes\.io/keep`}, NoDefaults: true},
			keep: map[string]bool{
				"k8s:kubernetes.io/keep-me=x": true,
				"k8s:kubernetes.io/drop=x":    false, // nothing includes it
				"k8s:pod-template-hash=x":     false,
				"reserved:host":               true, // reserved:.* is always kept
			},
		},
		{
			// Cilium's own example: with {!foo, foo.bar}, foo.bar is kept
			// because the include matches a longer section.
			name: "longest include beats shortest ignore",
			cfg:  FilterConfig{Include: []string{`foo\.bar`}, Exclude: []string{"foo"}},
			keep: map[string]bool{
				"k8s:foo.bar=x": true,  // include 7 > ignore 3
				"k8s:foo.baz=x": false, // ignore only
			},
		},
		{
			name: "shortest ignore is what counts",
			cfg:  FilterConfig{Include: []string{`io\.kubernetes`}, Exclude: []string{`io\.kube`}},
			keep: map[string]bool{
				// include 13 against min(default !io\.kubernetes 13, io\.kube 7) = 7
				"k8s:io.kubernetes.foo=x": true,
				"k8s:io.kubelet=x":        false, // ignore 7, no include
			},
		},
		{
			name: "ignore at least as long as include drops",
			cfg:  FilterConfig{Include: []string{"team"}, Exclude: []string{"team-secret", "tier"}, NoDefaults: true},
			keep: map[string]bool{
				"k8s:team=a":          true,  // include 4, no ignore
				"k8s:team-secret=x":   false, // include 4 < ignore 11
				"k8s:team-secretly=x": false,
			},
		},
		{
			name: "equal lengths drop",
			cfg:  FilterConfig{Include: []string{"foo"}, Exclude: []string{"foo"}},
			keep: map[string]bool{"k8s:foo=x": false},
		},
		{
			name: "no defaults",
			cfg:  FilterConfig{NoDefaults: true},
			keep: map[string]bool{
				"k8s:pod-template-hash=x":      true,
				"k8s:topology.kubernetes.io/x": true,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			f, err := NewFilter(tt.cfg)
			if err != nil {
				t.Fatalf("NewFilter: %v", err)
			}
			got := map[string]bool{}
			for label := range tt.keep {
				got[label] = isRelevant(t, f, label)
			}
			if diff := cmp.Diff(tt.keep, got); diff != "" {
				t.Errorf("relevant (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFilterConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     FilterConfig
		wantErr string
	}{
		{
			name:    "bad include regexp",
			cfg:     FilterConfig{Include: []string{"app", "tier", "k8s:("}},
			wantErr: `invalid label filter Include[2] "k8s:(": error parsing regexp: missing closing ): ` + "`(`",
		},
		{
			name:    "bad exclude regexp",
			cfg:     FilterConfig{Exclude: []string{"!a[b"}},
			wantErr: `invalid label filter Exclude[0] "!a[b": error parsing regexp: missing closing ]: ` + "`[b`",
		},
		{
			name:    "empty include",
			cfg:     FilterConfig{Include: []string{""}},
			wantErr: `invalid label filter Include[0] "": empty regexp`,
		},
		{
			name:    "empty prefix after source",
			cfg:     FilterConfig{Exclude: []string{"k8s:"}},
			wantErr: `invalid label filter Exclude[0] "k8s:": empty regexp`,
		},
		{
			name:    "negated include",
			cfg:     FilterConfig{Include: []string{"k8s:!app"}},
			wantErr: `invalid label filter Include[0] "k8s:!app": '!' marks an exclude pattern; put it in Exclude`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
			if f, err := NewFilter(tt.cfg); err == nil || f != nil {
				t.Fatalf("NewFilter() = %v, %v; want nil, error", f, err)
			}
		})
	}
}

func TestFilterPatterns(t *testing.T) {
	f, err := NewFilter(FilterConfig{Include: []string{"k8s:app"}, Exclude: []string{"tier"}, NoDefaults: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"reserved:.*", "k8s:app", "!tier"}
	if diff := cmp.Diff(want, f.Patterns()); diff != "" {
		t.Errorf("Patterns (-want +got):\n%s", diff)
	}
	def := DefaultFilter().Patterns()
	if len(def) != len(defaultPatterns) || def[0] != "reserved:.*" || def[len(def)-1] != `!topology\.kubernetes\.io` {
		t.Errorf("default Patterns = %q", def)
	}
	def[0] = "changed"
	if DefaultFilter().Patterns()[0] != "reserved:.*" {
		t.Error("Patterns shares state")
	}
	if !strings.HasPrefix(def[6], "!") {
		t.Errorf("default ignore pattern %q lacks '!'", def[6])
	}
}

func TestFilterEmptyAndConcurrent(t *testing.T) {
	f := DefaultFilter()
	if rel, ign := f.Filter(nil); rel != nil || ign != nil {
		t.Errorf("Filter(nil) = %v, %v", rel, ign)
	}
	l, err := ParseLabels("k8s:app=web", "k8s:pod-template-hash=x")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				rel, _ := f.Filter(l)
				if len(rel) != 1 {
					t.Error("concurrent Filter lost a label")
					return
				}
			}
		})
	}
	wg.Wait()
}
