package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	netutils "k8s.io/utils/net"

	"github.com/ceskit/ceskit/policy/ciliumv2"
)

// This file reproduces what the Kubernetes API server (v1.36) does to a networking.k8s.io/v1
// NetworkPolicy on create, so that policies read from raw YAML behave as if they had been applied
// to a cluster:
//
//   - defaulting: k8s.io/kubernetes pkg/apis/networking/v1/defaults.go
//     (SetDefaults_NetworkPolicy, SetDefaults_NetworkPolicyPort);
//   - validation: k8s.io/kubernetes pkg/apis/networking/validation/validation.go
//     (ValidateNetworkPolicy and the functions it calls), with the StrictIPCIDRValidation
//     feature gate on (its default since v1.36) and no update-only relaxations.
//
// k8s.io/kubernetes is not importable as a library, so the logic is rewritten here against the
// versioned k8s.io/api types; the building blocks that live in k8s.io/apimachinery (object meta,
// label selector, port and CIDR checks) are called directly.

// DefaultNetworkPolicy applies, in place, the defaults the API server gives a NetworkPolicy:
// every port (ingress and egress) without a protocol gets TCP, and an empty policyTypes becomes
// [Ingress], plus Egress if the policy has at least one egress rule. A nil np is ignored.
//
// Call it on every NetworkPolicy read from YAML before [ValidateNetworkPolicy] and before
// compiling it: the API server stores and enforces the defaulted object.
func DefaultNetworkPolicy(np *networkingv1.NetworkPolicy) {
	if np == nil {
		return
	}
	for i := range np.Spec.Ingress {
		for j := range np.Spec.Ingress[i].Ports {
			defaultNetworkPolicyPort(&np.Spec.Ingress[i].Ports[j])
		}
	}
	for i := range np.Spec.Egress {
		for j := range np.Spec.Egress[i].Ports {
			defaultNetworkPolicyPort(&np.Spec.Egress[i].Ports[j])
		}
	}
	if len(np.Spec.PolicyTypes) == 0 {
		// Any policy that does not specify policyTypes implies at least "Ingress".
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) != 0 {
			np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
}

// defaultNetworkPolicyPort is SetDefaults_NetworkPolicyPort.
func defaultNetworkPolicyPort(p *networkingv1.NetworkPolicyPort) {
	if p.Protocol == nil {
		proto := corev1.ProtocolTCP
		p.Protocol = &proto
	}
}

// maxGeneratedNameLength and generatedNameSuffix stand in for the API server's name generator
// (k8s.io/apiserver/pkg/storage/names): it keeps at most 58 characters of generateName and
// appends 5 random lowercase alphanumerics. Validation only depends on the length and the
// character class of the suffix, so a fixed one gives the same verdict.
const (
	maxGeneratedNameLength = 58
	generatedNameSuffix    = "x7k2q"
)

// ValidateNetworkPolicy checks a NetworkPolicy the way the API server does on create and returns
// every problem as a field error whose path and type are those the API server reports (for
// example Invalid at spec.ingress[0].from[1].ipBlock.except[0], Required at
// spec.podSelector.matchExpressions[0].values). An empty list means the API server would accept
// the policy. np must not be nil.
//
// It checks the object metadata (name a DNS subdomain, namespace required and a DNS label,
// labels, annotations, finalizers), the pod selector and every peer's pod and namespace selectors
// (operators, values, label key and value syntax), every port (protocol TCP, UDP or SCTP; port a
// number 1-65535 or an IANA service name; endPort only with a numeric port and not below it),
// every peer (at least one of podSelector, namespaceSelector, ipBlock; ipBlock alone; cidr a
// valid CIDR; each except a valid CIDR strictly inside cidr) and policyTypes (Ingress or Egress,
// at most two). Like the API server it accepts a duplicated policyTypes entry such as
// [Ingress, Ingress].
//
// The API server validates the defaulted object: call [DefaultNetworkPolicy] first. If the
// policy has generateName but no name, the name is checked as the API server would generate it.
// ValidateNetworkPolicy does not modify np.
func ValidateNetworkPolicy(np *networkingv1.NetworkPolicy) field.ErrorList {
	meta := np.ObjectMeta // shallow copy: only Name is replaced
	if meta.Name == "" && meta.GenerateName != "" {
		base := meta.GenerateName
		if len(base) > maxGeneratedNameLength {
			base = base[:maxGeneratedNameLength]
		}
		meta.Name = base + generatedNameSuffix
	}
	allErrs := validateObjectMeta(&meta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateNetworkPolicySpec(&np.Spec, field.NewPath("spec"))...)
	return allErrs
}

// validateObjectMeta is the core API group's ValidateObjectMeta for a namespaced object whose
// name is a DNS subdomain: apimachinery's checks plus the Kubernetes finalizer-name rule.
func validateObjectMeta(meta *metav1.ObjectMeta, fldPath *field.Path) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(meta, true, apimachineryvalidation.NameIsDNSSubdomain, fldPath)
	for i, f := range meta.Finalizers {
		if !strings.Contains(f, "/") && !isStandardFinalizerName(f) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("finalizers").Index(i), f, "name is neither a standard finalizer name nor is it fully qualified"))
		}
	}
	return allErrs
}

// isStandardFinalizerName reports whether f is one of the finalizers Kubernetes defines without a
// domain prefix.
func isStandardFinalizerName(f string) bool {
	switch f {
	case string(corev1.FinalizerKubernetes), metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents:
		return true
	}
	return false
}

// validateNetworkPolicySpec is ValidateNetworkPolicySpec.
func validateNetworkPolicySpec(spec *networkingv1.NetworkPolicySpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	selOpts := metav1validation.LabelSelectorValidationOptions{}
	allErrs = append(allErrs, metav1validation.ValidateLabelSelector(&spec.PodSelector, selOpts, fldPath.Child("podSelector"))...)

	for i := range spec.Ingress {
		ingressPath := fldPath.Child("ingress").Index(i)
		for j := range spec.Ingress[i].Ports {
			allErrs = append(allErrs, validateNetworkPolicyPort(&spec.Ingress[i].Ports[j], ingressPath.Child("ports").Index(j))...)
		}
		for j := range spec.Ingress[i].From {
			allErrs = append(allErrs, validateNetworkPolicyPeer(&spec.Ingress[i].From[j], ingressPath.Child("from").Index(j))...)
		}
	}
	for i := range spec.Egress {
		egressPath := fldPath.Child("egress").Index(i)
		for j := range spec.Egress[i].Ports {
			allErrs = append(allErrs, validateNetworkPolicyPort(&spec.Egress[i].Ports[j], egressPath.Child("ports").Index(j))...)
		}
		for j := range spec.Egress[i].To {
			allErrs = append(allErrs, validateNetworkPolicyPeer(&spec.Egress[i].To[j], egressPath.Child("to").Index(j))...)
		}
	}

	allowed := []string{string(networkingv1.PolicyTypeIngress), string(networkingv1.PolicyTypeEgress)}
	if len(spec.PolicyTypes) > len(allowed) {
		// The API server passes &spec.PolicyTypes; field errors print a pointer's target, so the
		// slice itself gives the same message without aliasing the caller's object.
		return append(allErrs, field.Invalid(fldPath.Child("policyTypes"), spec.PolicyTypes, "may not specify more than two policyTypes"))
	}
	for i, pt := range spec.PolicyTypes {
		if pt != networkingv1.PolicyTypeIngress && pt != networkingv1.PolicyTypeEgress {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("policyTypes").Index(i), pt, allowed))
		}
	}
	return allErrs
}

// validateNetworkPolicyPort is ValidateNetworkPolicyPort, including its quirk of reporting the
// port (not the endPort) as the value when endPort < port.
func validateNetworkPolicyPort(port *networkingv1.NetworkPolicyPort, portPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if p := port.Protocol; p != nil && *p != corev1.ProtocolTCP && *p != corev1.ProtocolUDP && *p != corev1.ProtocolSCTP {
		allErrs = append(allErrs, field.NotSupported(portPath.Child("protocol"), *p,
			[]string{string(corev1.ProtocolTCP), string(corev1.ProtocolUDP), string(corev1.ProtocolSCTP)}))
	}
	switch {
	case port.Port == nil:
		if port.EndPort != nil {
			allErrs = append(allErrs, field.Invalid(portPath.Child("endPort"), *port.EndPort, "may not be specified when `port` is not specified"))
		}
	case port.Port.Type == intstr.Int:
		for _, msg := range validation.IsValidPortNum(int(port.Port.IntVal)) {
			allErrs = append(allErrs, field.Invalid(portPath.Child("port"), port.Port.IntVal, msg))
		}
		if port.EndPort != nil {
			if *port.EndPort < port.Port.IntVal {
				allErrs = append(allErrs, field.Invalid(portPath.Child("endPort"), port.Port.IntVal, "must be greater than or equal to `port`"))
			}
			for _, msg := range validation.IsValidPortNum(int(*port.EndPort)) {
				allErrs = append(allErrs, field.Invalid(portPath.Child("endPort"), *port.EndPort, msg))
			}
		}
	default:
		if port.EndPort != nil {
			allErrs = append(allErrs, field.Invalid(portPath.Child("endPort"), *port.EndPort, "may not be specified when `port` is non-numeric"))
		}
		for _, msg := range validation.IsValidPortName(port.Port.StrVal) {
			allErrs = append(allErrs, field.Invalid(portPath.Child("port"), port.Port.StrVal, msg))
		}
	}
	return allErrs
}

// validateNetworkPolicyPeer is ValidateNetworkPolicyPeer.
func validateNetworkPolicyPeer(peer *networkingv1.NetworkPolicyPeer, peerPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	selOpts := metav1validation.LabelSelectorValidationOptions{}
	numPeers := 0
	if peer.PodSelector != nil {
		numPeers++
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(peer.PodSelector, selOpts, peerPath.Child("podSelector"))...)
	}
	if peer.NamespaceSelector != nil {
		numPeers++
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(peer.NamespaceSelector, selOpts, peerPath.Child("namespaceSelector"))...)
	}
	if peer.IPBlock != nil {
		numPeers++
		allErrs = append(allErrs, validateIPBlock(peer.IPBlock, peerPath.Child("ipBlock"))...)
	}
	if numPeers == 0 {
		allErrs = append(allErrs, field.Required(peerPath, "must specify a peer"))
	} else if numPeers > 1 && peer.IPBlock != nil {
		allErrs = append(allErrs, field.Forbidden(peerPath, "may not specify both ipBlock and another peer"))
	}
	return allErrs
}

// validateIPBlock is ValidateIPBlock with strict CIDR validation (no leading zeros, no
// IPv4-mapped IPv6, no bits set beyond the prefix length). An except is a strict subset when
// cidr contains its address and its prefix is longer; an except of the other IP family is never
// contained.
func validateIPBlock(ipb *networkingv1.IPBlock, fldPath *field.Path) field.ErrorList {
	if ipb.CIDR == "" {
		return field.ErrorList{field.Required(fldPath.Child("cidr"), "").MarkCoveredByDeclarative()}
	}
	allErrs := validation.IsValidCIDRForLegacyField(fldPath.Child("cidr"), ipb.CIDR, true, nil)
	_, cidr, err := netutils.ParseCIDRSloppy(ipb.CIDR)
	if err != nil {
		return allErrs // already reported
	}
	cidrLen, _ := cidr.Mask.Size()
	for i, s := range ipb.Except {
		exceptPath := fldPath.Child("except").Index(i)
		allErrs = append(allErrs, validation.IsValidCIDRForLegacyField(exceptPath, s, true, nil)...)
		_, except, err := netutils.ParseCIDRSloppy(s)
		if err != nil {
			continue // already reported
		}
		exceptLen, _ := except.Mask.Size()
		if !cidr.Contains(except.IP) || cidrLen >= exceptLen {
			allErrs = append(allErrs, field.Invalid(exceptPath, s, "must be a strict subset of `cidr`"))
		}
	}
	return allErrs
}

// DecodeObjects decodes a stream of Kubernetes objects: YAML documents separated by "---", or
// concatenated JSON objects. A document of kind List (or any kind ending in "List" with an items
// array, such as NetworkPolicyList) contributes its items in order; items without apiVersion and
// kind take them from the list (NetworkPolicyList items become NetworkPolicy). Documents that are
// empty or hold only comments are skipped.
//
// networking.k8s.io/v1 NetworkPolicy decodes to *networkingv1.NetworkPolicy, neither defaulted
// nor validated (see [DefaultNetworkPolicy] and [ValidateNetworkPolicy]); cilium.io/v2
// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy decode to
// *[ciliumv2.CiliumNetworkPolicy] and *[ciliumv2.CiliumClusterwideNetworkPolicy].
//
// Field names are matched case-sensitively, as the API server does; fields the Go types do not
// have are dropped, not rejected (list them with [UnknownFields]). Any other apiVersion or kind,
// a document that is not an object, or one without apiVersion or kind is an error naming the
// document's index and, where known, its apiVersion and kind. Indexes count from 0 in stream
// order; a skipped comment-only document counts, nothing between two adjacent "---" does not. On error no objects are returned.
func DecodeObjects(data []byte) ([]runtime.Object, error) {
	var objs []runtime.Object
	err := walkDocuments(data, func(d decoded) {
		objs = append(objs, d.obj)
	})
	if err != nil {
		return nil, err
	}
	return objs, nil
}

// UnknownFields returns the fields in data that the Go type of their object does not have and
// that [DecodeObjects] therefore drops, each as "doc[i].path": i is the document's index as
// DecodeObjects counts it, and path the field's JSON path within the document, for example
// "doc[0].spec.ingress[0].fromm" or, for the second item of a List in the third document,
// "doc[2].items[1].spec.podSelektor". The paths of one object are sorted; objects come in
// stream order.
//
// Fields are matched case-sensitively, so a miscapitalized field ("podselector") is unknown.
// Duplicate JSON fields are not reported. UnknownFields fails exactly when DecodeObjects does.
func UnknownFields(data []byte) ([]string, error) {
	var unknown []string
	err := walkDocuments(data, func(d decoded) {
		for _, f := range d.unknown {
			unknown = append(unknown, d.path+"."+f)
		}
	})
	if err != nil {
		return nil, err
	}
	return unknown, nil
}

// policyKinds are the kinds DecodeObjects returns.
var policyKinds = []schema.GroupVersionKind{
	networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"),
	ciliumv2.SchemeGroupVersion.WithKind("CiliumNetworkPolicy"),
	ciliumv2.SchemeGroupVersion.WithKind("CiliumClusterwideNetworkPolicy"),
}

// decoded is one object out of a stream.
type decoded struct {
	obj     runtime.Object
	path    string   // "doc[i]" or "doc[i].items[j]"
	unknown []string // JSON paths of unknown fields, relative to the object
}

// typeMeta is the part of a document DecodeObjects reads before choosing a Go type.
type typeMeta struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Items      json.RawMessage `json:"items"`
}

// walkDocuments splits data into documents and calls fn with each object, in order.
func walkDocuments(data []byte, fn func(decoded)) error {
	scheme := runtime.NewScheme()
	if err := networkingv1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}
	if err := ciliumv2.AddToScheme(scheme); err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}
	serializer := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Strict: true})

	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for i := 0; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decode document %d: %w", i, err)
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
			continue
		}
		docPath := fmt.Sprintf("doc[%d]", i)
		if err := decodeDocument(serializer, raw, docPath, "", "", fn); err != nil {
			return fmt.Errorf("decode document %d: %w", i, err)
		}
	}
}

// decodeDocument decodes one document, or one item of a list, whose JSON is raw. A list's items
// inherit defaultAPIVersion and defaultKind when they name no type of their own.
func decodeDocument(serializer runtime.Decoder, raw []byte, path, defaultAPIVersion, defaultKind string, fn func(decoded)) error {
	if raw[0] != '{' {
		return errors.New("not an object")
	}
	var tm typeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return err
	}
	if tm.APIVersion == "" && tm.Kind == "" && defaultKind != "" {
		tm.APIVersion, tm.Kind = defaultAPIVersion, defaultKind
		var err error
		if raw, err = setTypeMeta(raw, tm.APIVersion, tm.Kind); err != nil {
			return err
		}
	}
	switch {
	case tm.Kind == "":
		return fmt.Errorf("apiVersion %q: kind not set", tm.APIVersion)
	case tm.APIVersion == "":
		return fmt.Errorf("kind %q: apiVersion not set", tm.Kind)
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return fmt.Errorf("apiVersion %q kind %q: %w", tm.APIVersion, tm.Kind, err)
	}
	gvk := gv.WithKind(tm.Kind)

	if strings.HasSuffix(tm.Kind, "List") && len(tm.Items) > 0 && !bytes.Equal(tm.Items, []byte("null")) {
		var items []json.RawMessage
		if err := json.Unmarshal(tm.Items, &items); err != nil {
			return fmt.Errorf("apiVersion %q kind %q: items: %w", tm.APIVersion, tm.Kind, err)
		}
		itemAPIVersion, itemKind := "", ""
		if tm.Kind != "List" {
			itemAPIVersion, itemKind = tm.APIVersion, strings.TrimSuffix(tm.Kind, "List")
		}
		for j, item := range items {
			item = bytes.TrimSpace(item)
			itemPath := fmt.Sprintf("%s.items[%d]", path, j)
			if len(item) == 0 || bytes.Equal(item, []byte("null")) {
				return fmt.Errorf("apiVersion %q kind %q: item %d: empty", tm.APIVersion, tm.Kind, j)
			}
			if err := decodeDocument(serializer, item, itemPath, itemAPIVersion, itemKind, fn); err != nil {
				return fmt.Errorf("apiVersion %q kind %q: item %d: %w", tm.APIVersion, tm.Kind, j, err)
			}
		}
		return nil
	}
	if !slices.Contains(policyKinds, gvk) {
		if strings.HasSuffix(tm.Kind, "List") && (tm.Kind == "List" || slices.Contains(policyKinds, gv.WithKind(strings.TrimSuffix(tm.Kind, "List")))) {
			return nil // a list without items
		}
		return fmt.Errorf("apiVersion %q kind %q: unsupported (want networking.k8s.io/v1 NetworkPolicy, cilium.io/v2 CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy, or a List of them)", tm.APIVersion, tm.Kind)
	}
	obj, _, err := serializer.Decode(raw, nil, nil)
	var unknown []string
	if err != nil {
		strict, ok := runtime.AsStrictDecodingError(err)
		if !ok {
			return fmt.Errorf("apiVersion %q kind %q: %w", tm.APIVersion, tm.Kind, err)
		}
		for _, e := range strict.Errors() {
			var fe interface{ FieldPath() string }
			if errors.As(e, &fe) && strings.HasPrefix(e.Error(), "unknown field") {
				unknown = append(unknown, fe.FieldPath())
			}
		}
		slices.Sort(unknown)
	}
	fn(decoded{obj: obj, path: path, unknown: unknown})
	return nil
}

// setTypeMeta returns the JSON object raw with apiVersion and kind set, leaving every other
// member's bytes untouched.
func setTypeMeta(raw []byte, apiVersion, kind string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	av, _ := json.Marshal(apiVersion)
	k, _ := json.Marshal(kind)
	m["apiVersion"], m["kind"] = av, k
	return json.Marshal(m)
}
