package slicer

// Fuzz tests of what the slicer decodes from the API server: CiliumEndpointSlices (the
// Watcher's source) and CiliumEndpoints (the Controller's and the Watcher's fallback), through
// the JSON serializer the clients use and the conversions the Watcher applies. Seed corpora are
// in testdata/fuzz/FuzzDecodeSlice and testdata/fuzz/FuzzDecodeEndpoint.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"

	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// fuzzMaxInput bounds the inputs decoded: larger ones only cost time.
const fuzzMaxInput = 64 << 10

// fuzzSerializer is the JSON serializer of the slicer's clients (NewClient's scheme, not
// strict: unknown fields are dropped, as client-go does).
func fuzzSerializer(tb testing.TB) *kjson.Serializer {
	tb.Helper()
	scheme := runtime.NewScheme()
	if err := ciliumv2.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	if err := ciliumv2alpha1.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{})
}

// fuzzDecode decodes data; an object without apiVersion and kind is taken as def.
func fuzzDecode(s *kjson.Serializer, data []byte, def schema.GroupVersionKind) (runtime.Object, error) {
	obj, _, err := s.Decode(data, &def, nil)
	return obj, err
}

// fuzzRoundTrip encodes obj, decodes the bytes and encodes again: the two encodings must be
// equal and the second decoding must equal the first object in own (the part of the object the
// slicer owns: time stamps in metadata lose sub-second precision on the first encoding, by
// design of metav1.Time). It returns the decoded copy.
func fuzzRoundTrip[T runtime.Object](t *testing.T, s *kjson.Serializer, obj T, gvk schema.GroupVersionKind, own func(T) any) T {
	t.Helper()
	var b1, b2 bytes.Buffer
	if err := s.Encode(obj, &b1); err != nil {
		t.Fatalf("encode %T: %v", obj, err)
	}
	back, err := fuzzDecode(s, b1.Bytes(), gvk)
	if err != nil {
		t.Fatalf("decode what was encoded: %v\n%s", err, b1.Bytes())
	}
	typed, ok := back.(T)
	if !ok {
		t.Fatalf("encoded %T decodes to %T", obj, back)
	}
	if err := s.Encode(typed, &b2); err != nil {
		t.Fatalf("encode again: %v", err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Fatalf("round trip not stable:\n first %s\nsecond %s", b1.Bytes(), b2.Bytes())
	}
	if !equality.Semantic.DeepEqual(own(obj), own(typed)) {
		t.Fatalf("round trip changed the object:\n before %+v\n  after %+v\n%s", own(obj), own(typed), b1.Bytes())
	}
	return typed
}

// checkEndpointIPs checks what Endpoint.IPs returns: valid addresses without a zone, each parsed
// from one of the endpoint's ipv4/ipv6 fields; when strict (the endpoint passed validation),
// exactly one per non-empty field, of the field's family.
func checkEndpointIPs(t *testing.T, ep *Endpoint, strict bool) {
	t.Helper()
	ips := ep.IPs()
	var fields []string
	if ep.Networking != nil {
		for _, p := range ep.Networking.Addressing {
			if p == nil {
				continue
			}
			for _, s := range []string{p.IPV4, p.IPV6} {
				if s != "" {
					fields = append(fields, s)
				}
			}
		}
	}
	for _, a := range ips {
		if !a.IsValid() || a.Zone() != "" {
			t.Fatalf("%s: IPs() returned %v (valid %v, zone %q)", ep.Key(), a, a.IsValid(), a.Zone())
		}
		found := false
		for _, s := range fields {
			if b, err := netip.ParseAddr(s); err == nil && b == a {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: IPs() returned %v, which is in no address field %q", ep.Key(), a, fields)
		}
	}
	if !strict {
		return
	}
	if len(ips) != len(fields) {
		t.Fatalf("%s: a validated endpoint's IPs() returned %v for the fields %q", ep.Key(), ips, fields)
	}
	if ep.Networking == nil {
		return
	}
	for _, p := range ep.Networking.Addressing {
		if a, err := netip.ParseAddr(p.IPV4); p.IPV4 != "" && (err != nil || !a.Is4()) {
			t.Fatalf("%s: validated ipv4 %q does not parse as IPv4", ep.Key(), p.IPV4)
		}
		if a, err := netip.ParseAddr(p.IPV6); p.IPV6 != "" && (err != nil || !a.Is6() || a.Is4In6()) {
			t.Fatalf("%s: validated ipv6 %q does not parse as IPv6", ep.Key(), p.IPV6)
		}
	}
}

// checkEndpointJSON checks that a slicer.Endpoint survives JSON (the Watcher's /status and the
// agent's debug output carry it).
func checkEndpointJSON(t *testing.T, ep *Endpoint) {
	t.Helper()
	b, err := json.Marshal(ep)
	if err != nil {
		t.Fatalf("marshal endpoint %s: %v", ep.Key(), err)
	}
	var back Endpoint
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal endpoint %s: %v\n%s", ep.Key(), err, b)
	}
	if !equality.Semantic.DeepEqual(*ep, back) {
		t.Fatalf("endpoint JSON round trip changed it:\n before %+v\n  after %+v\n%s", *ep, back, b)
	}
}

func FuzzDecodeSlice(f *testing.F) {
	s := fuzzSerializer(f)
	def := ciliumv2alpha1.SchemeGroupVersion.WithKind("CiliumEndpointSlice")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		obj, err := fuzzDecode(s, data, def)
		if err != nil {
			return
		}
		var slices []*ciliumv2alpha1.CiliumEndpointSlice
		switch o := obj.(type) {
		case *ciliumv2alpha1.CiliumEndpointSlice:
			slices = append(slices, fuzzRoundTrip(t, s, o, def, func(c *ciliumv2alpha1.CiliumEndpointSlice) any {
				return []any{c.Name, c.Namespace, c.Labels, c.Endpoints}
			}))
		case *ciliumv2alpha1.CiliumEndpointSliceList:
			for i := range fuzzRoundTrip(t, s, o, ciliumv2alpha1.SchemeGroupVersion.WithKind("CiliumEndpointSliceList"), func(l *ciliumv2alpha1.CiliumEndpointSliceList) any { return len(l.Items) }).Items {
				slices = append(slices, &o.Items[i])
			}
		default:
			return // another kind of the scheme
		}

		// The Watcher's view of the slices: every entry of every slice, the last listing of a
		// key winning, as Watcher.applyLocked and source.effective make it.
		src := &source{kind: SourceSlices, slices: map[string]map[string]sliceEntry{}, holders: map[string]map[string]bool{}}
		last := map[string]*ciliumv2alpha1.CiliumEndpointSlice{} // a later slice of the same name replaces it
		for _, ces := range slices {
			src.applySlice(ces, false)
			last[ces.Name] = ces
		}
		keys := src.keys()
		for _, ces := range last {
			for _, e := range ces.Endpoints {
				if key := ces.Namespace + "/" + e.Name; !keys[key] {
					t.Fatalf("slice %s lists %s, which the Watcher does not hold", ces.Name, key)
				}
			}
		}
		for key := range keys {
			ep := src.effective(key)
			if ep == nil {
				t.Fatalf("key %s is held but has no effective endpoint", key)
			}
			if ep.Key() != key {
				t.Fatalf("key %s holds endpoint %s", key, ep.Key())
			}
			checkEndpointIPs(t, ep, false)
			checkEndpointJSON(t, ep)
		}
		// Deleting every slice forgets every endpoint.
		for _, ces := range slices {
			src.applySlice(ces, true)
		}
		if n := len(src.keys()); n != 0 || len(src.slices) != 0 {
			t.Fatalf("after deleting every slice %d endpoints and %d slices remain", n, len(src.slices))
		}
	})
}

func FuzzDecodeEndpoint(f *testing.F) {
	s := fuzzSerializer(f)
	def := ciliumv2.SchemeGroupVersion.WithKind("CiliumEndpoint")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		obj, err := fuzzDecode(s, data, def)
		if err != nil {
			return
		}
		var ceps []*ciliumv2.CiliumEndpoint
		switch o := obj.(type) {
		case *ciliumv2.CiliumEndpoint:
			ceps = append(ceps, fuzzRoundTrip(t, s, o, def, func(c *ciliumv2.CiliumEndpoint) any {
				return []any{c.Name, c.Namespace, c.OwnerReferences, c.Status}
			}))
		case *ciliumv2.CiliumEndpointList:
			for i := range fuzzRoundTrip(t, s, o, ciliumv2.SchemeGroupVersion.WithKind("CiliumEndpointList"), func(l *ciliumv2.CiliumEndpointList) any { return len(l.Items) }).Items {
				ceps = append(ceps, &o.Items[i])
			}
		default:
			return
		}
		for _, cep := range ceps {
			checkCEP(t, s, cep)
		}
	})
}

// checkCEP converts a CiliumEndpoint as the Controller and the Watcher do and checks the result.
func checkCEP(t *testing.T, s *kjson.Serializer, cep *ciliumv2.CiliumEndpoint) {
	t.Helper()
	before := cep.DeepCopy()
	core, ready, err := CoreEndpointFromCEP(cep)
	if !equality.Semantic.DeepEqual(before, cep) {
		t.Fatalf("CoreEndpointFromCEP changed its argument")
	}
	if err != nil {
		var ee *EndpointError
		if !errors.As(err, &ee) || !errors.Is(err, ErrInvalidEndpoint) {
			t.Fatalf("CoreEndpointFromCEP error %T is not an *EndpointError: %v", err, err)
		}
		if ee.Field == "" || !strings.HasPrefix(ee.Field, "status.") || ee.Endpoint != cep.Namespace+"/"+cep.Name || ee.Reason == "" {
			t.Fatalf("EndpointError does not name the endpoint, the field and the reason: %+v", ee)
		}
		if ready {
			t.Fatalf("CoreEndpointFromCEP returned ready with an error")
		}
		return
	}
	if !ready {
		if cep.Status.Identity != nil && cep.Status.Identity.ID != 0 {
			t.Fatalf("endpoint with identity %d not ready without an error", cep.Status.Identity.ID)
		}
		return
	}
	if core.IdentityID <= 0 || core.IdentityID > 0xFFFFFFFF || core.Name != cep.Name {
		t.Fatalf("ready core endpoint %+v from identity %v", core, cep.Status.Identity)
	}
	for i, p := range core.NamedPorts {
		if p == nil {
			t.Fatalf("ready core endpoint has a nil named port %d", i)
		}
	}
	ep := &Endpoint{Namespace: cep.Namespace, CoreCiliumEndpoint: core}
	if ep.Networking != nil {
		for i, p := range ep.Networking.Addressing {
			if p == nil {
				t.Fatalf("ready core endpoint has a nil address pair %d", i)
			}
		}
	}
	checkEndpointIPs(t, ep, true)
	checkEndpointJSON(t, ep)

	// In a slice, as the Controller writes it, the entry survives the API round trip.
	ces := &ciliumv2alpha1.CiliumEndpointSlice{Namespace: cep.Namespace, Endpoints: []ciliumv2alpha1.CoreCiliumEndpoint{core}}
	ces.Name = "ces-fuzz"
	gvk := ciliumv2alpha1.SchemeGroupVersion.WithKind("CiliumEndpointSlice")
	ces.SetGroupVersionKind(gvk)
	back := fuzzRoundTrip(t, s, ces, gvk, func(c *ciliumv2alpha1.CiliumEndpointSlice) any { return []any{c.Namespace, c.Endpoints} })
	src := &source{kind: SourceSlices, slices: map[string]map[string]sliceEntry{}, holders: map[string]map[string]bool{}}
	src.applySlice(back, false)
	if got := src.effective(ep.Key()); got == nil || !equality.Semantic.DeepEqual(got, ep) {
		t.Fatalf("the Watcher sees %+v from the slice, want %+v", got, ep)
	}

	// Converting the slice entry back into a CiliumEndpoint is accepted again.
	again := &ciliumv2.CiliumEndpoint{ObjectMeta: cep.ObjectMeta, Status: ciliumv2.EndpointStatus{
		Identity: &ciliumv2.EndpointIdentity{ID: core.IdentityID}, Networking: core.Networking,
		Encryption: core.Encryption, NamedPorts: core.NamedPorts, ServiceAccount: core.ServiceAccount,
	}}
	if core2, ready2, err := CoreEndpointFromCEP(again); err != nil || !ready2 || !equality.Semantic.DeepEqual(core, core2) {
		t.Fatalf("the converted endpoint does not convert to itself: ready %v, error %v\n %+v\n %+v", ready2, err, core, core2)
	}
}
