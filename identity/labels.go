package identity

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Label sources, with Cilium's spelling. The source is the part of a label
// before the first ':'.
const (
	// SourceK8s marks labels taken from Kubernetes objects (pod labels,
	// namespace labels, service account, cluster name).
	SourceK8s = "k8s"
	// SourceReserved marks Cilium's reserved labels ("reserved:host", …).
	SourceReserved = "reserved"
	// SourceAny matches any source in selectors; it is not meant for
	// identity labels.
	SourceAny = "any"
	// SourceUnspec is the source of a label parsed without one.
	SourceUnspec = "unspec"
	// SourceContainer marks labels taken from the container runtime.
	SourceContainer = "container"
	// SourceCNI marks labels passed in by the CNI plugin.
	SourceCNI = "cni"
	// SourceCIDR marks labels generated for CIDR selectors; they lead to
	// local-scope identities.
	SourceCIDR = "cidr"
	// SourceCIDRGroup marks labels taken from CiliumCIDRGroups; they lead to
	// local-scope identities.
	SourceCIDRGroup = "cidrgroup"
	// SourceFQDN marks labels generated for FQDN selectors; they lead to
	// local-scope identities.
	SourceFQDN = "fqdn"
	// SourceNode marks labels of remote nodes.
	SourceNode = "node"
)

// Keys of the labels Cilium's agent adds to every pod's labels (source k8s).
const (
	// LabelNamespace holds the pod's namespace name.
	LabelNamespace = "io.kubernetes.pod.namespace"
	// LabelNamespaceLabelsPrefix prefixes a copy of every label of the
	// pod's namespace: namespace label "team=a" becomes
	// "io.cilium.k8s.namespace.labels.team=a".
	LabelNamespaceLabelsPrefix = "io.cilium.k8s.namespace.labels."
	// LabelServiceAccount holds the pod's service account name.
	LabelServiceAccount = "io.cilium.k8s.policy.serviceaccount"
	// LabelCluster holds the name of the cluster the pod runs in.
	LabelCluster = "io.cilium.k8s.policy.cluster"

	// ciliumOwnedPrefix is the key prefix of labels only Cilium may set;
	// pod labels with it are dropped, as in Cilium's SanitizePodLabels.
	ciliumOwnedPrefix = "io.cilium.k8s"
)

// ErrInvalidLabels is matched (with [errors.Is]) by every [LabelError].
var ErrInvalidLabels = errors.New("invalid labels")

// LabelError reports a label that cannot be part of an identity. It matches
// [ErrInvalidLabels] with [errors.Is].
type LabelError struct {
	// Field is the part that is wrong: "label", "source", "key", "value"
	// or "labels".
	Field string
	// Value is the offending text.
	Value string
	// Reason says what rule it breaks.
	Reason string
}

// Error returns for example `invalid label key "foo bar": name part must
// consist of alphanumeric characters…`.
func (e *LabelError) Error() string {
	return fmt.Sprintf("invalid label %s %q: %s", e.Field, e.Value, e.Reason)
}

// Is reports whether target is [ErrInvalidLabels].
func (e *LabelError) Is(target error) bool {
	return target == ErrInvalidLabels
}

// Label is one security-relevant label: source, key and optional value, as in
// Cilium ("k8s:app=web", "reserved:host", "cidr:10.0.0.0/8").
type Label struct {
	// Source is where the label comes from, one of the Source constants.
	Source string
	// Key is the label key.
	Key string
	// Value is the label value; it may be empty.
	Value string
}

// String returns Cilium's form "source:key=value", or "source:key" when the
// value is empty.
func (l Label) String() string {
	if l.Value == "" {
		return l.Source + ":" + l.Key
	}
	return l.Source + ":" + l.Key + "=" + l.Value
}

// kvKey appends Cilium's FormatForKVStore form "source:key=value;" to b.
func (l Label) kvKey(b *strings.Builder) {
	b.WriteString(l.Source)
	b.WriteByte(':')
	b.WriteString(l.Key)
	b.WriteByte('=')
	b.WriteString(l.Value)
	b.WriteByte(';')
}

// ParseLabel parses a label the way Cilium's ParseLabel does and validates
// it: the text before the first ':' is the source ("unspec" if there is no
// ':'), a leading '$' or "reserved." means source reserved ("$host" is
// "reserved:host"), and the first '=' after the source separates key and
// value.
func ParseLabel(s string) (Label, error) {
	if s == "" {
		return Label{}, &LabelError{Field: "label", Value: s, Reason: "must not be empty"}
	}
	src, rest := splitSource(s)
	l := Label{Source: src}
	if i := strings.IndexByte(rest, '='); i < 0 {
		l.Key = rest
	} else if i == 0 && src == SourceReserved {
		// Cilium accepts "reserved:=host" as "reserved:host".
		l.Key = rest[1:]
	} else {
		l.Key, l.Value = rest[:i], rest[i+1:]
	}
	if err := l.validate(); err != nil {
		return Label{}, err
	}
	return l, nil
}

// splitSource splits "source:rest" as Cilium's parseSource does with ':' as
// the delimiter, defaulting the source to [SourceUnspec].
func splitSource(s string) (src, rest string) {
	if strings.HasPrefix(s, "$") {
		return SourceReserved, s[1:]
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[:i], s[i+1:]
	}
	if r, ok := strings.CutPrefix(s, SourceReserved+"."); ok {
		return SourceReserved, r
	}
	return SourceUnspec, s
}

// validate checks one label. Sources must not contain ':', ';' or '='. k8s
// labels follow Kubernetes rules (qualified-name keys, label values; the
// part after [LabelNamespaceLabelsPrefix] is checked as the namespace label
// key it came from, and service account names as DNS subdomains). Reserved
// labels must name a reserved identity and have no value. Other keys must not
// contain '=' or ';' and values must not contain ';', so that the allocation
// key stays unambiguous.
func (l Label) validate() error {
	if l.Source == "" || strings.ContainsAny(l.Source, ":;=") {
		return &LabelError{Field: "source", Value: l.Source, Reason: "must be non-empty and must not contain ':', ';' or '='"}
	}
	if l.Key == "" {
		return &LabelError{Field: "key", Value: l.String(), Reason: "must not be empty"}
	}
	switch l.Source {
	case SourceK8s:
		key := l.Key
		if rest, ok := strings.CutPrefix(key, LabelNamespaceLabelsPrefix); ok {
			key = rest
		}
		if errs := validation.IsQualifiedName(key); len(errs) > 0 {
			return &LabelError{Field: "key", Value: l.Key, Reason: strings.Join(errs, "; ")}
		}
		if l.Key == LabelServiceAccount {
			if errs := validation.IsDNS1123Subdomain(l.Value); len(errs) > 0 {
				return &LabelError{Field: "value", Value: l.Value, Reason: "service account name: " + strings.Join(errs, "; ")}
			}
			return nil
		}
		if errs := validation.IsValidLabelValue(l.Value); len(errs) > 0 {
			return &LabelError{Field: "value", Value: l.Value, Reason: strings.Join(errs, "; ")}
		}
	case SourceReserved:
		if _, ok := LookupReserved(l.Key); !ok {
			return &LabelError{Field: "key", Value: l.Key, Reason: "not a reserved identity name"}
		}
		if l.Value != "" {
			return &LabelError{Field: "value", Value: l.Value, Reason: "reserved labels have no value"}
		}
	default:
		if strings.ContainsAny(l.Key, "=;") {
			return &LabelError{Field: "key", Value: l.Key, Reason: "must not contain '=' or ';'"}
		}
		if strings.ContainsRune(l.Value, ';') {
			return &LabelError{Field: "value", Value: l.Value, Reason: "must not contain ';'"}
		}
	}
	return nil
}

// Labels is a normalized set of labels: sorted by key, at most one label per
// key (as Cilium's map keyed by label key). Build it with [NewLabels],
// [ParseLabels], [PodLabels] or [LabelsFromSecurityLabels]; methods also cope
// with unsorted literals by sorting a copy. A Labels value is never modified
// by this package once returned.
type Labels []Label

// NewLabels validates ls and returns them normalized. An empty source becomes
// [SourceUnspec]. Exact duplicates are merged; two labels with the same key
// but a different source or value are an error.
func NewLabels(ls ...Label) (Labels, error) {
	out := make(Labels, 0, len(ls))
	for _, l := range ls {
		if l.Source == "" {
			l.Source = SourceUnspec
		}
		if err := l.validate(); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	slices.SortStableFunc(out, func(a, b Label) int { return strings.Compare(a.Key, b.Key) })
	n := 0
	for i, l := range out {
		if i > 0 && out[n-1].Key == l.Key {
			if out[n-1] != l {
				return nil, &LabelError{Field: "key", Value: l.Key,
					Reason: fmt.Sprintf("conflicting labels %s and %s", out[n-1], l)}
			}
			continue
		}
		out[n] = l
		n++
	}
	if n == 0 {
		return nil, nil
	}
	return out[:n:n], nil
}

// ParseLabels parses each string with [ParseLabel] and returns the
// normalized set, as [NewLabels] does.
func ParseLabels(ss ...string) (Labels, error) {
	ls := make([]Label, 0, len(ss))
	for _, s := range ss {
		l, err := ParseLabel(s)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	return NewLabels(ls...)
}

// sorted returns l if it is sorted by key, or a sorted copy.
func (l Labels) sorted() Labels {
	cmpKey := func(a, b Label) int { return strings.Compare(a.Key, b.Key) }
	if slices.IsSortedFunc(l, cmpKey) {
		return l
	}
	c := slices.Clone(l)
	slices.SortStableFunc(c, cmpKey)
	return c
}

// Key returns the allocation key: the concatenation of "source:key=value;"
// for every label in key order, byte-identical to Cilium's
// GlobalIdentity.GetKey (Label.FormatForKVStore over the sorted labels).
func (l Labels) Key() string {
	var b strings.Builder
	for _, lbl := range l.sorted() {
		lbl.kvKey(&b)
	}
	return b.String()
}

// SecurityLabels returns the map stored in a CiliumIdentity's
// security-labels field: "source:key" → value.
func (l Labels) SecurityLabels() map[string]string {
	m := make(map[string]string, len(l))
	for _, lbl := range l {
		m[lbl.Source+":"+lbl.Key] = lbl.Value
	}
	return m
}

// LabelsFromSecurityLabels is the inverse of [Labels.SecurityLabels]. A key
// without ':' gets source [SourceUnspec], as in Cilium.
func LabelsFromSecurityLabels(m map[string]string) (Labels, error) {
	ls := make([]Label, 0, len(m))
	for k, v := range m {
		src, key := splitSource(k)
		ls = append(ls, Label{Source: src, Key: key, Value: v})
	}
	return NewLabels(ls...)
}

// Get returns the label with the given key (whatever its source).
func (l Labels) Get(key string) (Label, bool) {
	s := l.sorted()
	i := sort.Search(len(s), func(i int) bool { return s[i].Key >= key })
	if i < len(s) && s[i].Key == key {
		return s[i], true
	}
	return Label{}, false
}

// Equal reports whether l and o hold the same labels.
func (l Labels) Equal(o Labels) bool {
	return slices.Equal(l.sorted(), o.sorted())
}

// String returns the labels in Cilium's printable form: each label's
// [Label.String], sorted, joined by ",".
func (l Labels) String() string {
	ss := make([]string, len(l))
	for i, lbl := range l {
		ss[i] = lbl.String()
	}
	sort.Strings(ss)
	return strings.Join(ss, ",")
}

// Namespace returns the value of the [LabelNamespace] label, or "".
func (l Labels) Namespace() string {
	lbl, _ := l.Get(LabelNamespace)
	return lbl.Value
}

// PodLabels builds a pod's labels as Cilium's agent does
// (SanitizePodLabels), all with source k8s: the pod's own labels except
// those starting with "io.cilium.k8s" (reserved for Cilium), one
// LabelNamespaceLabelsPrefix+key label per namespace label, [LabelNamespace],
// [LabelServiceAccount] if serviceAccount is non-empty and [LabelCluster] if
// cluster is non-empty (Cilium always has a cluster name, "default" by
// default). The result is not filtered; see [Filter].
func PodLabels(namespace string, podLabels, namespaceLabels map[string]string, serviceAccount, cluster string) (Labels, error) {
	if namespace == "" {
		return nil, &LabelError{Field: "value", Value: namespace, Reason: "namespace must not be empty"}
	}
	ls := make([]Label, 0, len(podLabels)+len(namespaceLabels)+3)
	for k, v := range podLabels {
		if strings.HasPrefix(k, ciliumOwnedPrefix) || k == LabelNamespace {
			continue
		}
		ls = append(ls, Label{Source: SourceK8s, Key: k, Value: v})
	}
	ls = appendNamespaceLabels(ls, namespaceLabels)
	ls = append(ls, Label{Source: SourceK8s, Key: LabelNamespace, Value: namespace})
	if serviceAccount != "" {
		ls = append(ls, Label{Source: SourceK8s, Key: LabelServiceAccount, Value: serviceAccount})
	}
	if cluster != "" {
		ls = append(ls, Label{Source: SourceK8s, Key: LabelCluster, Value: cluster})
	}
	return NewLabels(ls...)
}

func appendNamespaceLabels(ls []Label, namespaceLabels map[string]string) []Label {
	for k, v := range namespaceLabels {
		ls = append(ls, Label{Source: SourceK8s, Key: LabelNamespaceLabelsPrefix + k, Value: v})
	}
	return ls
}

// WithNamespaceLabels returns a copy of l in which every
// LabelNamespaceLabelsPrefix label is replaced by the given namespace labels,
// as when a namespace is relabelled. l is not modified.
func WithNamespaceLabels(l Labels, namespaceLabels map[string]string) (Labels, error) {
	ls := make([]Label, 0, len(l)+len(namespaceLabels))
	for _, lbl := range l {
		if strings.HasPrefix(lbl.Key, LabelNamespaceLabelsPrefix) {
			continue
		}
		ls = append(ls, lbl)
	}
	return NewLabels(appendNamespaceLabels(ls, namespaceLabels)...)
}
