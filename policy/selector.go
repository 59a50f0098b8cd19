package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/identity"
)

// idKind tells what an identity stands for.
type idKind uint8

const (
	kindPod      idKind = iota // a pod identity (global scope)
	kindReserved               // host, world, remote-node, …
	kindCIDR                   // a prefix a policy names (local scope)
	kindFQDN                   // an address learned for a toFQDNs selector (local scope)
	kindNode                   // remote nodes inside policy CIDRs, in ModeSpec (remote-node scope)
)

// idInfo is what the engine knows of one identity.
type idInfo struct {
	id     identity.NumericIdentity
	kind   idKind
	labels identity.Labels
	set    map[string]string // "source:key" and bare "key" → value, for label selectors
	// within lists the policy prefixes that contain every address of this identity: for a CIDR
	// identity the prefixes around its own, for the world those around 0.0.0.0/0 and ::/0, for a
	// pod identity in ModeSpec those around its pods' addresses. CIDR selectors match on it.
	within []netip.Prefix
	world  bool // outside the cluster: CIDR selectors select it in every mode
	fqdn   []string
	node   identity.NumericIdentity // for kindNode: the reserved identity it stands for
}

func newIDInfo(id identity.NumericIdentity, kind idKind, lbls identity.Labels) *idInfo {
	set := make(map[string]string, 2*len(lbls))
	for _, l := range lbls {
		set[l.Source+":"+l.Key] = l.Value
		set[l.Key] = l.Value
	}
	info := &idInfo{id: id, kind: kind, labels: lbls, set: set}
	if _, ok := set["reserved:world"]; ok {
		info.world = true
	}
	return info
}

// peerSel selects identities.
type peerSel interface {
	// key identifies the selector; equal keys select the same identities.
	key() string
	matches(id *idInfo) bool
}

// labelSel is an endpoint selector over identity labels: all requirements must hold.
type labelSel struct {
	reqs []req
	str  string
}

// req is one label requirement with Kubernetes selector semantics: NotIn and DoesNotExist match
// when the key is absent, In and Exists do not.
type req struct {
	key    string
	op     string // "In", "NotIn", "Exists", "DoesNotExist"
	values []string
}

func (r req) String() string {
	switch r.op {
	case "Exists":
		return r.key
	case "DoesNotExist":
		return "!" + r.key
	}
	return r.key + " " + r.op + " (" + strings.Join(r.values, ",") + ")"
}

func (s *labelSel) key() string { return "labels:" + s.str }

func (s *labelSel) matches(id *idInfo) bool {
	for _, r := range s.reqs {
		v, ok := id.set[r.key]
		switch r.op {
		case "In":
			if !ok || !slices.Contains(r.values, v) {
				return false
			}
		case "NotIn":
			if ok && slices.Contains(r.values, v) {
				return false
			}
		case "Exists":
			if !ok {
				return false
			}
		case "DoesNotExist":
			if ok {
				return false
			}
		}
	}
	return true
}

// newLabelSel builds a selector from requirements, with a canonical string.
func newLabelSel(reqs []req) *labelSel {
	for i := range reqs {
		reqs[i].values = slices.Clone(reqs[i].values)
		slices.Sort(reqs[i].values)
	}
	slices.SortFunc(reqs, func(a, b req) int { return strings.Compare(a.String(), b.String()) })
	parts := make([]string, len(reqs))
	for i, r := range reqs {
		parts[i] = r.String()
	}
	return &labelSel{reqs: reqs, str: strings.Join(parts, ",")}
}

// selectorReqs converts a Kubernetes label selector, prefixing every key with prefix and mapping
// source prefixes ("any:" is dropped: it matches every source).
func selectorReqs(sel *metav1.LabelSelector, prefix string) ([]req, error) {
	if sel == nil {
		return nil, nil
	}
	var out []req
	for k, v := range sel.MatchLabels {
		out = append(out, req{key: prefix + selectorKey(k), op: "In", values: []string{v}})
	}
	for i, e := range sel.MatchExpressions {
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				return nil, fmt.Errorf("matchExpressions[%d]: operator %s needs values", i, e.Operator)
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				return nil, fmt.Errorf("matchExpressions[%d]: operator %s takes no values", i, e.Operator)
			}
		default:
			return nil, fmt.Errorf("matchExpressions[%d]: operator %q is not In, NotIn, Exists or DoesNotExist", i, e.Operator)
		}
		out = append(out, req{key: prefix + selectorKey(e.Key), op: string(e.Operator), values: e.Values})
	}
	return out, nil
}

// selectorKey maps a selector key to the identity label-set key: "any:app" and "app" match any
// source, "k8s:app" only that source.
func selectorKey(k string) string {
	if rest, ok := strings.CutPrefix(k, "any:"); ok {
		return rest
	}
	return k
}

// cidrSel selects addresses in prefix but not in any except: identities whose addresses all lie
// in prefix and outside the excepts. In ModeAKS only identities outside the cluster.
type cidrSel struct {
	prefix    netip.Prefix
	except    []netip.Prefix
	worldOnly bool
	str       string
}

func (s *cidrSel) key() string { return "cidr:" + s.str }

func (s *cidrSel) matches(id *idInfo) bool {
	if s.worldOnly && !id.world {
		return false
	}
	if id.kind == kindReserved && !id.world {
		return false
	}
	if !slices.Contains(id.within, s.prefix) {
		return false
	}
	for _, ex := range s.except {
		if slices.Contains(id.within, ex) {
			return false
		}
	}
	return true
}

// entitySel selects Cilium entities.
type entitySel struct {
	entity string
}

func (s *entitySel) key() string { return "entity:" + s.entity }

func (s *entitySel) matches(info *idInfo) bool {
	id := info
	if info.node != 0 {
		id = &idInfo{id: info.node}
	}
	switch s.entity {
	case "all":
		return true
	case "world":
		return info.world
	case "cluster":
		return !info.world && id.id != identity.ReservedUnmanaged
	case "host":
		return id.id == identity.ReservedHost
	case "remote-node":
		return id.id == identity.ReservedRemoteNode
	case "kube-apiserver":
		return id.id == identity.ReservedKubeAPIServer
	case "health":
		return id.id == identity.ReservedHealth
	case "init":
		return id.id == identity.ReservedInit
	case "ingress":
		return id.id == identity.ReservedIngress
	case "unmanaged":
		return id.id == identity.ReservedUnmanaged
	}
	return false
}

// fqdnSel selects the identities of addresses learned for a toFQDNs selector.
type fqdnSel struct {
	m *FQDNMatcher
}

func (s *fqdnSel) key() string { return "fqdn:" + s.m.String() }

func (s *fqdnSel) matches(id *idInfo) bool {
	return id.kind == kindFQDN && slices.Contains(id.fqdn, s.m.String())
}

// selEntry is a selector with the identities it selects, kept current as identities come and go.
// Code that changes ids must reset list.
type selEntry struct {
	sel  peerSel
	ids  map[identity.NumericIdentity]struct{}
	list []identity.NumericIdentity // sorted ids, built on demand
}

// sorted returns the selected identities in order. The slice is shared: do not modify it.
func (s *selEntry) sorted() []identity.NumericIdentity {
	if s.list == nil {
		s.list = make([]identity.NumericIdentity, 0, len(s.ids))
		for id := range s.ids {
			s.list = append(s.list, id)
		}
		slices.Sort(s.list)
	}
	return s.list
}
