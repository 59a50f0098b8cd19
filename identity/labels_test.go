package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLabel(t *testing.T) {
	tests := []struct {
		in        string
		want      Label
		wantStr   string // String() of the result; in if empty
		wantField string // LabelError.Field when parsing fails
	}{
		{in: "k8s:app=web", want: Label{SourceK8s, "app", "web"}},
		{in: "k8s:app.kubernetes.io/name=web", want: Label{SourceK8s, "app.kubernetes.io/name", "web"}},
		{in: "k8s:app=", want: Label{SourceK8s, "app", ""}, wantStr: "k8s:app"},
		{in: "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
			want: Label{SourceK8s, "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", "default"}},
		{in: "app=web", want: Label{SourceUnspec, "app", "web"}, wantStr: "unspec:app=web"},
		{in: "$host", want: Label{SourceReserved, "host", ""}, wantStr: "reserved:host"},
		{in: "reserved.world", want: Label{SourceReserved, "world", ""}, wantStr: "reserved:world"},
		{in: "reserved:=init", want: Label{SourceReserved, "init", ""}, wantStr: "reserved:init"},
		{in: "reserved:kube-apiserver", want: Label{SourceReserved, "kube-apiserver", ""}},
		{in: "container:a=b=c", want: Label{SourceContainer, "a", "b=c"}},
		{in: "cidr:10.0.0.0/8", want: Label{SourceCIDR, "10.0.0.0/8", ""}},
		{in: "cidr:2001:db8::/32", want: Label{SourceCIDR, "2001:db8::/32", ""}},
		{in: "fqdn:*.example.com", want: Label{SourceFQDN, "*.example.com", ""}},
		{in: "", wantField: "label"},
		{in: "k8s:", wantField: "key"},
		{in: "k8s:=web", wantField: "key"},
		{in: ":app=web", wantField: "source"},
		{in: "k8s:foo bar=x", wantField: "key"},
		{in: "k8s:app=-bad-", wantField: "value"},
		{in: "k8s:app=" + strings.Repeat("a", 64), wantField: "value"},
		{in: "reserved:nope", wantField: "key"},
		{in: "reserved:host=x", wantField: "value"},
		{in: "container:a;b=c", wantField: "key"},
		{in: "container:a=b;c", wantField: "value"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLabel(tt.in)
			if tt.wantField != "" {
				var le *LabelError
				if !errors.As(err, &le) || !errors.Is(err, ErrInvalidLabels) {
					t.Fatalf("ParseLabel(%q) error = %v, want *LabelError matching ErrInvalidLabels", tt.in, err)
				}
				if le.Field != tt.wantField {
					t.Errorf("LabelError.Field = %q, want %q (%v)", le.Field, tt.wantField, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLabel(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseLabel(%q) (-want +got):\n%s", tt.in, diff)
			}
			wantStr := tt.wantStr
			if wantStr == "" {
				wantStr = tt.in
			}
			if s := got.String(); s != wantStr {
				t.Errorf("String() = %q, want %q", s, wantStr)
			}
		})
	}
}

func TestLabelErrorMessage(t *testing.T) {
	_, err := ParseLabel("k8s:foo bar=x")
	const want = `invalid label key "foo bar": `
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %v, want prefix %q", err, want)
	}
}

func TestNewLabels(t *testing.T) {
	tests := []struct {
		name    string
		in      []Label
		want    Labels
		wantErr string
	}{
		{name: "empty", in: nil, want: nil},
		{
			name: "sorted by key",
			in:   []Label{{SourceK8s, "zone", "a"}, {SourceK8s, "app", "web"}, {SourceReserved, "host", ""}},
			want: Labels{{SourceK8s, "app", "web"}, {SourceReserved, "host", ""}, {SourceK8s, "zone", "a"}},
		},
		{
			name: "duplicates merged, empty source unspec",
			in:   []Label{{"", "app", "web"}, {SourceUnspec, "app", "web"}},
			want: Labels{{SourceUnspec, "app", "web"}},
		},
		{
			name:    "conflicting value",
			in:      []Label{{SourceK8s, "app", "web"}, {SourceK8s, "app", "db"}},
			wantErr: `invalid label key "app": conflicting labels k8s:app=web and k8s:app=db`,
		},
		{
			name:    "conflicting source",
			in:      []Label{{SourceK8s, "app", "web"}, {SourceContainer, "app", "web"}},
			wantErr: `invalid label key "app": conflicting labels k8s:app=web and container:app=web`,
		},
		{
			name:    "invalid label",
			in:      []Label{{SourceK8s, "app", "web"}, {SourceReserved, "bogus", ""}},
			wantErr: `invalid label key "bogus": not a reserved identity name`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewLabels(tt.in...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrInvalidLabels) {
					t.Fatalf("NewLabels error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewLabels: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NewLabels (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLabelsKey(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{name: "empty", want: ""},
		{
			// Cilium: labels sorted by key, each as FormatForKVStore
			// "source:key=value;", '=' even for empty values.
			name: "pod",
			in: []string{
				"k8s:io.kubernetes.pod.namespace=default",
				"k8s:app=web",
				"k8s:io.cilium.k8s.policy.cluster=default",
				"k8s:io.cilium.k8s.policy.serviceaccount=web",
				"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
			},
			want: "k8s:app=web;" +
				"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default;" +
				"k8s:io.cilium.k8s.policy.cluster=default;" +
				"k8s:io.cilium.k8s.policy.serviceaccount=web;" +
				"k8s:io.kubernetes.pod.namespace=default;",
		},
		{
			name: "reserved and cidr",
			in:   []string{"reserved:world", "cidr:10.0.0.0/8"},
			want: "cidr:10.0.0.0/8=;reserved:world=;",
		},
		{
			name: "sorted by key not source",
			in:   []string{"container:b=1", "k8s:a=2"},
			want: "k8s:a=2;container:b=1;",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseLabels(tt.in...)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Key(); got != tt.want {
				t.Errorf("Key() = %q, want %q", got, tt.want)
			}
			// Unsorted literals give the same key.
			rev := make(Labels, len(l))
			for i := range l {
				rev[len(l)-1-i] = l[i]
			}
			if got := rev.Key(); got != tt.want {
				t.Errorf("Key() of unsorted = %q, want %q", got, tt.want)
			}
			if !rev.Equal(l) {
				t.Error("Equal(unsorted copy) = false")
			}
			back, err := LabelsFromSecurityLabels(l.SecurityLabels())
			if err != nil {
				t.Fatalf("LabelsFromSecurityLabels: %v", err)
			}
			if diff := cmp.Diff(l, back); diff != "" {
				t.Errorf("SecurityLabels round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLabelsAccessors(t *testing.T) {
	l, err := ParseLabels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop", "reserved:host", "container:x=1")
	if err != nil {
		t.Fatal(err)
	}
	wantSec := map[string]string{
		"k8s:app":                         "web",
		"k8s:io.kubernetes.pod.namespace": "shop",
		"reserved:host":                   "",
		"container:x":                     "1",
	}
	if diff := cmp.Diff(wantSec, l.SecurityLabels()); diff != "" {
		t.Errorf("SecurityLabels (-want +got):\n%s", diff)
	}
	if got, ok := l.Get("app"); !ok || got != (Label{SourceK8s, "app", "web"}) {
		t.Errorf("Get(app) = %v, %v", got, ok)
	}
	if _, ok := l.Get("nope"); ok {
		t.Error("Get(nope) found")
	}
	if got := l.Namespace(); got != "shop" {
		t.Errorf("Namespace() = %q, want shop", got)
	}
	if got := (Labels{}).Namespace(); got != "" {
		t.Errorf("empty Namespace() = %q", got)
	}
	if got, want := l.String(), "container:x=1,k8s:app=web,k8s:io.kubernetes.pod.namespace=shop,reserved:host"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	other, _ := ParseLabels("k8s:app=db", "k8s:io.kubernetes.pod.namespace=shop", "reserved:host", "container:x=1")
	if l.Equal(other) {
		t.Error("Equal(different value) = true")
	}
	if l.Equal(l[:2]) {
		t.Error("Equal(shorter) = true")
	}
	m, err := LabelsFromSecurityLabels(map[string]string{"plain": "v"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Labels{{SourceUnspec, "plain", "v"}}, m); diff != "" {
		t.Errorf("source-less security label (-want +got):\n%s", diff)
	}
	if _, err := LabelsFromSecurityLabels(map[string]string{"k8s:bad key": "v"}); !errors.Is(err, ErrInvalidLabels) {
		t.Errorf("LabelsFromSecurityLabels(bad) error = %v", err)
	}
}

func TestPodLabels(t *testing.T) {
	tests := []struct {
		name      string
		namespace string
		pod, ns   map[string]string
		sa, clus  string
		want      []string
		wantField string
	}{
		{
			name:      "full",
			namespace: "shop",
			pod:       map[string]string{"app": "web", "pod-template-hash": "abc"},
			ns:        map[string]string{"kubernetes.io/metadata.name": "shop", "team": "a"},
			sa:        "web-sa",
			clus:      "prod",
			want: []string{
				"k8s:app=web",
				"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
				"k8s:io.cilium.k8s.namespace.labels.team=a",
				"k8s:io.cilium.k8s.policy.cluster=prod",
				"k8s:io.cilium.k8s.policy.serviceaccount=web-sa",
				"k8s:io.kubernetes.pod.namespace=shop",
				"k8s:pod-template-hash=abc",
			},
		},
		{
			name:      "cilium-owned pod labels dropped or overridden",
			namespace: "shop",
			pod: map[string]string{
				"app":                                 "web",
				"io.cilium.k8s.policy.serviceaccount": "spoofed",
				"io.cilium.k8s.policy.cluster":        "spoofed",
				"io.cilium.k8s.namespace.labels.team": "spoofed",
				"io.kubernetes.pod.namespace":         "spoofed",
			},
			want: []string{"k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"},
		},
		{
			name:      "long service account name",
			namespace: "ns",
			sa:        strings.Repeat("a", 70),
			want:      []string{"k8s:io.cilium.k8s.policy.serviceaccount=" + strings.Repeat("a", 70), "k8s:io.kubernetes.pod.namespace=ns"},
		},
		{name: "no namespace", wantField: "value"},
		{name: "bad pod label", namespace: "ns", pod: map[string]string{"bad key": "x"}, wantField: "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PodLabels(tt.namespace, tt.pod, tt.ns, tt.sa, tt.clus)
			if tt.wantField != "" {
				var le *LabelError
				if !errors.As(err, &le) || le.Field != tt.wantField {
					t.Fatalf("PodLabels error = %v, want LabelError field %q", err, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("PodLabels: %v", err)
			}
			want, err := ParseLabels(tt.want...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("PodLabels (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWithNamespaceLabels(t *testing.T) {
	orig, err := PodLabels("shop", map[string]string{"app": "web"},
		map[string]string{"team": "a", "env": "prod"}, "sa", "c1")
	if err != nil {
		t.Fatal(err)
	}
	before := orig.Key()
	got, err := WithNamespaceLabels(orig, map[string]string{"team": "b"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := PodLabels("shop", map[string]string{"app": "web"}, map[string]string{"team": "b"}, "sa", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithNamespaceLabels (-want +got):\n%s", diff)
	}
	if orig.Key() != before {
		t.Error("WithNamespaceLabels modified its input")
	}
	if _, err := WithNamespaceLabels(orig, map[string]string{"team": "-bad-"}); !errors.Is(err, ErrInvalidLabels) {
		t.Errorf("WithNamespaceLabels(bad value) error = %v", err)
	}
}
