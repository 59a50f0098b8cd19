package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestCompileFQDNSelectorErrors(t *testing.T) {
	long := strings.Repeat("a", 250) + ".io.x" // 255+ characters
	for _, tc := range []struct {
		name string
		sel  FQDNSelector
		want string // the error message
	}{
		{"neither", FQDNSelector{}, "fqdn selector: one of matchName or matchPattern is required"},
		{"both", FQDNSelector{MatchName: "a.io", MatchPattern: "*.io"},
			`matchPattern "*.io": may not be set together with matchName "a.io"; set exactly one`},
		{"name star", FQDNSelector{MatchName: "*.cilium.io"},
			`matchName "*.cilium.io": invalid character '*' at offset 0; only letters, digits, '-', '_' and '.' are allowed`},
		{"name space", FQDNSelector{MatchName: "cilium .io"},
			`matchName "cilium .io": invalid character ' ' at offset 6; only letters, digits, '-', '_' and '.' are allowed`},
		{"name regexp", FQDNSelector{MatchName: "cilium[.]io"},
			`matchName "cilium[.]io": invalid character '[' at offset 6; only letters, digits, '-', '_' and '.' are allowed`},
		{"name unicode", FQDNSelector{MatchName: "bücher.de"},
			`matchName "bücher.de": invalid character 'ü' at offset 1; only letters, digits, '-', '_' and '.' are allowed`},
		{"name leading dot", FQDNSelector{MatchName: ".cilium.io"}, `matchName ".cilium.io": must not start with '.'`},
		{"name empty label", FQDNSelector{MatchName: "cilium..io"}, `matchName "cilium..io": empty label ("..")`},
		{"name double trailing dot", FQDNSelector{MatchName: "cilium.io.."}, `matchName "cilium.io..": empty label ("..")`},
		{"name root", FQDNSelector{MatchName: "."}, `matchName ".": the root name alone cannot be selected`},
		{"name too long", FQDNSelector{MatchName: long + "xx"},
			fmt.Sprintf("matchName %q: must be at most 255 characters, is 257", long+"xx")},
		{"pattern double star inside", FQDNSelector{MatchPattern: "a**b"},
			`matchPattern "a**b": "**" at offset 1: a double star is only allowed as a leading "**." prefix, and runs of three or more stars are not allowed`},
		{"pattern double star alone", FQDNSelector{MatchPattern: "**"},
			`matchPattern "**": "**" at offset 0: a double star is only allowed as a leading "**." prefix, and runs of three or more stars are not allowed`},
		{"pattern triple star prefix", FQDNSelector{MatchPattern: "***.cilium.io"},
			`matchPattern "***.cilium.io": "**" at offset 0: a double star is only allowed as a leading "**." prefix, and runs of three or more stars are not allowed`},
		{"pattern double star after prefix", FQDNSelector{MatchPattern: "**.a**.io"},
			`matchPattern "**.a**.io": "**" at offset 4: a double star is only allowed as a leading "**." prefix, and runs of three or more stars are not allowed`},
		{"pattern double star suffix", FQDNSelector{MatchPattern: "cilium.**"},
			`matchPattern "cilium.**": "**" at offset 7: a double star is only allowed as a leading "**." prefix, and runs of three or more stars are not allowed`},
		{"pattern bare any-depth", FQDNSelector{MatchPattern: "**."},
			`matchPattern "**.": "**." must be followed by at least one label`},
		{"pattern any-depth root", FQDNSelector{MatchPattern: "**.."},
			`matchPattern "**..": "**." must be followed by at least one label`},
		{"pattern char", FQDNSelector{MatchPattern: "*.cilium.io/x"},
			`matchPattern "*.cilium.io/x": invalid character '/' at offset 11; only letters, digits, '-', '_', '.' and '*' are allowed`},
		{"pattern regexp", FQDNSelector{MatchPattern: "(a|b).io"},
			`matchPattern "(a|b).io": invalid character '(' at offset 0; only letters, digits, '-', '_', '.' and '*' are allowed`},
		{"pattern leading dot", FQDNSelector{MatchPattern: ".*.io"}, `matchPattern ".*.io": must not start with '.'`},
		{"pattern empty label", FQDNSelector{MatchPattern: "*..io"}, `matchPattern "*..io": empty label ("..")`},
		{"pattern too long", FQDNSelector{MatchPattern: "*" + long},
			fmt.Sprintf("matchPattern %q: must be at most 255 characters, is 256", "*"+long)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := CompileFQDNSelector(tc.sel)
			if err == nil {
				t.Fatalf("CompileFQDNSelector(%+v) = %v, want error %q", tc.sel, m, tc.want)
			}
			if m != nil {
				t.Errorf("CompileFQDNSelector(%+v) returned a matcher with the error", tc.sel)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFQDNMatcherMatch(t *testing.T) {
	for _, tc := range []struct {
		sel       FQDNSelector
		match     []string
		noMatch   []string
		wantLabel string
	}{
		{
			sel:       FQDNSelector{MatchName: "cilium.io"},
			match:     []string{"cilium.io", "cilium.io.", "CILIUM.IO", "Cilium.Io."},
			noMatch:   []string{"", ".", "sub.cilium.io", "cilium.io.com", "ciliumxio", "cilium.i", "cilium..io", "cilium.io.."},
			wantLabel: "fqdn:cilium.io",
		},
		{
			sel:       FQDNSelector{MatchName: "Cilium.IO."}, // trailing dot and case on the selector side
			match:     []string{"cilium.io", "cilium.io.", "CILIUM.io"},
			noMatch:   []string{"www.cilium.io"},
			wantLabel: "fqdn:cilium.io.",
		},
		{
			sel:       FQDNSelector{MatchName: "_foobar._tcp.cilium.io"}, // SRV (RFC 2782) names
			match:     []string{"_foobar._tcp.cilium.io."},
			noMatch:   []string{"_tcp.cilium.io", "cilium.io"},
			wantLabel: "fqdn:_foobar._tcp.cilium.io",
		},
		{
			sel:       FQDNSelector{MatchPattern: "cilium.io"}, // a pattern without stars is a literal
			match:     []string{"cilium.io", "CILIUM.IO."},
			noMatch:   []string{"sub.cilium.io", "xcilium.io"},
			wantLabel: "fqdn:cilium.io",
		},
		{
			sel:       FQDNSelector{MatchPattern: "*.cilium.io"},
			match:     []string{"sub.cilium.io", "SUB.cilium.io.", "a-b_c.cilium.io", "0.cilium.io"},
			noMatch:   []string{"cilium.io", "a.b.cilium.io", ".cilium.io", "sub.cilium.io.com", "subcilium.io", "sub.ciliumxio"},
			wantLabel: "fqdn:*.cilium.io",
		},
		{
			sel:       FQDNSelector{MatchPattern: "*cilium.io"}, // leading star not followed by '.'
			match:     []string{"cilium.io", "mycilium.io", "my-cilium.io."},
			noMatch:   []string{"www.cilium.io", "a.b.cilium.io", "cilium.io.com", "ciliumio"},
			wantLabel: "fqdn:*cilium.io",
		},
		{
			sel:       FQDNSelector{MatchPattern: "sub*.cilium.io"},
			match:     []string{"sub.cilium.io", "subdomain.cilium.io", "SUB-1.cilium.io"},
			noMatch:   []string{"www.cilium.io", "cilium.io", "a.sub.cilium.io", "xsub.cilium.io", "sub.x.cilium.io"},
			wantLabel: "fqdn:sub*.cilium.io",
		},
		{
			sel:       FQDNSelector{MatchPattern: "*.ci*.io"},
			match:     []string{"anysub.cilium.io", "anysub.ci.io", "anysub.ciliumandmore.io"},
			noMatch:   []string{"cilium.io", "a.b.cilium.io", "anysub.xci.io"},
			wantLabel: "fqdn:*.ci*.io",
		},
		{
			sel:       FQDNSelector{MatchPattern: "a*b*c.io"},
			match:     []string{"abc.io", "aXbYc.io", "abbbc.io", "abcbc.io", "a-b-c.io"},
			noMatch:   []string{"ab.io", "acb.io", "abcd.io", "xabc.io", "a.b.c.io"},
			wantLabel: "fqdn:a*b*c.io",
		},
		{
			sel:       FQDNSelector{MatchPattern: "*.*.cilium.io"},
			match:     []string{"_foobar._tcp.cilium.io", "a.b.cilium.io"},
			noMatch:   []string{"a.cilium.io", "a.b.c.cilium.io"},
			wantLabel: "fqdn:*.*.cilium.io",
		},
		{
			sel:       FQDNSelector{MatchPattern: "api.*"},
			match:     []string{"api.io", "api.com."},
			noMatch:   []string{"api", "api.a.io", "x.api.io"},
			wantLabel: "fqdn:api.*",
		},
		{
			sel:       FQDNSelector{MatchPattern: "*"},
			match:     []string{".", "io", "io.", "cilium.io", "svc.cluster.local", "service.namespace.svc.cluster.local.", "_foobar._tcp.cilium.io", "UPPER.case"},
			noMatch:   []string{"", ".io.", ".cilium.io", "a..b", "a b.io", "bücher.de", "cilium.io/x"},
			wantLabel: "fqdn:*",
		},
		{
			sel:       FQDNSelector{MatchPattern: "*."},
			match:     []string{".", "io", "a.b.c.d"},
			noMatch:   []string{"", "a..b"},
			wantLabel: "fqdn:*.",
		},
		{
			sel:       FQDNSelector{MatchPattern: "**.cilium.io"},
			match:     []string{"a.cilium.io", "a.b.cilium.io", "A.B.C.D.cilium.io.", "_x.cilium.io"},
			noMatch:   []string{"cilium.io", "cilium.io.", "acilium.io", "a.cilium.io.com", ".cilium.io", "a..cilium.io"},
			wantLabel: "fqdn:**.cilium.io",
		},
		{
			sel:       FQDNSelector{MatchPattern: "**.*.cilium.io"},
			match:     []string{"a.b.cilium.io", "a.b.c.cilium.io"},
			noMatch:   []string{"a.cilium.io", "cilium.io"},
			wantLabel: "fqdn:**.*.cilium.io",
		},
		{
			sel:       FQDNSelector{MatchPattern: "**.api-*.Example.COM."},
			match:     []string{"x.api-1.example.com", "x.y.api-.example.com"},
			noMatch:   []string{"api-1.example.com", "x.api.example.com"},
			wantLabel: "fqdn:**.api-*.example.com.",
		},
	} {
		t.Run(tc.wantLabel, func(t *testing.T) {
			m, err := CompileFQDNSelector(tc.sel)
			if err != nil {
				t.Fatalf("CompileFQDNSelector(%+v): %v", tc.sel, err)
			}
			if got := m.String(); got != tc.wantLabel {
				t.Errorf("String() = %q, want %q", got, tc.wantLabel)
			}
			for _, n := range tc.match {
				if !m.Match(n) {
					t.Errorf("%s: Match(%q) = false, want true", m, n)
				}
			}
			for _, n := range tc.noMatch {
				if m.Match(n) {
					t.Errorf("%s: Match(%q) = true, want false", m, n)
				}
			}
		})
	}
}

func TestFQDNMatcherZero(t *testing.T) {
	var nilM *FQDNMatcher
	if nilM.Match("cilium.io") || (&FQDNMatcher{}).Match("cilium.io") || (&FQDNMatcher{}).Match(".") {
		t.Error("nil or zero FQDNMatcher matched a name")
	}
}

// fqdnOracle is an independent reading of the matchPattern rules as a regular expression, the
// way Cilium's pkg/fqdn/matchpattern turns a pattern into one, restricted to valid names.
func fqdnOracle(t testing.TB, sel FQDNSelector) func(string) bool {
	t.Helper()
	const c = `[-a-z0-9_]`
	var expr string
	switch p := strings.ToLower(sel.MatchPattern); {
	case sel.MatchName != "":
		expr = `^` + regexp.QuoteMeta(strings.TrimSuffix(strings.ToLower(sel.MatchName), ".")+".") + `$`
	case p == "*" || p == "*.":
		expr = `^((` + c + `+\.)+|\.)$`
	default:
		var b strings.Builder
		b.WriteString("^")
		if rest, ok := strings.CutPrefix(p, "**."); ok {
			b.WriteString(`(` + c + `+\.)+`)
			p = rest
		}
		for _, r := range strings.TrimSuffix(p, ".") + "." {
			switch r {
			case '*':
				b.WriteString(c + `*`)
			case '.':
				b.WriteString(`\.`)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteString("$")
		expr = b.String()
	}
	re := regexp.MustCompile(expr)
	valid := regexp.MustCompile(`^((` + c + `+\.)+|\.)$`)
	return func(name string) bool {
		n := strings.ToLower(name)
		if !strings.HasSuffix(n, ".") {
			n += "."
		}
		return name != "" && valid.MatchString(n) && re.MatchString(n)
	}
}

const fqdnAlphabet = "abcAB-_09"

func randFQDNLabel(r *rand.Rand, maxLen int) string {
	n := 1 + r.IntN(maxLen)
	b := make([]byte, n)
	for i := range b {
		b[i] = fqdnAlphabet[r.IntN(len(fqdnAlphabet))]
	}
	return string(b)
}

func randFQDNName(r *rand.Rand) string {
	labels := make([]string, 1+r.IntN(4))
	for i := range labels {
		labels[i] = randFQDNLabel(r, 4)
	}
	name := strings.Join(labels, ".")
	switch r.IntN(8) {
	case 0:
		name += "."
	case 1:
		name = strings.Replace(name, ".", "..", 1) // invalid: empty label
	case 2:
		name = "." + name // invalid: leading dot
	case 3:
		name += string("!é "[r.IntN(3)]) // invalid character
	}
	return name
}

// fqdnPatternFrom turns a valid name into a pattern that must match it: stars replace random
// substrings inside labels, and sometimes leading labels become "**.".
func fqdnPatternFrom(r *rand.Rand, name string) string {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	if len(labels) > 1 && r.IntN(3) == 0 {
		labels = append([]string{"**"}, labels[1+r.IntN(len(labels)-1):]...)
	}
	for i, l := range labels {
		if l == "**" || r.IntN(2) == 0 {
			continue
		}
		a := r.IntN(len(l) + 1)
		b := a + r.IntN(len(l)-a+1)
		l = l[:a] + "*" + l[b:]
		if r.IntN(3) == 0 { // a second star, not adjacent to the first
			if j := strings.IndexByte(l, '*'); j+2 <= len(l) {
				k := j + 2 + r.IntN(len(l)-j-1)
				if k <= len(l) && l[k-1] != '*' {
					l = l[:k] + "*" + l[k:]
				}
			}
		}
		labels[i] = l
	}
	p := strings.Join(labels, ".")
	if r.IntN(2) == 0 {
		p = strings.ToUpper(p)
	}
	return p
}

func TestFQDNMatcherProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	names := make([]string, 400)
	for i := range names {
		names[i] = randFQDNName(r)
	}
	validName := regexp.MustCompile(`^([-a-zA-Z0-9_]+\.)*[-a-zA-Z0-9_]+\.?$`)
	for i := 0; i < 400; i++ {
		base := names[i]
		if !validName.MatchString(base) {
			continue
		}
		sels := []FQDNSelector{{MatchName: base}, {MatchPattern: fqdnPatternFrom(r, base)}, {MatchPattern: "*"}}
		for _, sel := range sels {
			m, err := CompileFQDNSelector(sel)
			if err != nil {
				t.Fatalf("CompileFQDNSelector(%+v): %v", sel, err)
			}
			// The name a selector was built from matches, whatever the case and trailing dot.
			for _, v := range []string{base, strings.ToUpper(base), strings.TrimSuffix(base, ".") + ".", strings.TrimSuffix(base, ".")} {
				if !m.Match(v) {
					t.Errorf("%s: Match(%q) = false, want true", m, v)
				}
			}
			// The label is the lowercased selector value.
			if want := "fqdn:" + strings.ToLower(sel.MatchName+sel.MatchPattern); m.String() != want {
				t.Errorf("String() = %q, want %q", m.String(), want)
			}
			// Agreement with the regular-expression oracle on every generated name.
			oracle := fqdnOracle(t, sel)
			for _, n := range names {
				if got, want := m.Match(n), oracle(n); got != want {
					t.Errorf("%s: Match(%q) = %v, oracle says %v", m, n, got, want)
				}
			}
		}
	}
}

func FuzzFQDNMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"*.cilium.io", "sub.cilium.io"}, {"*cilium.io", "cilium.io"}, {"**.cilium.io", "a.b.cilium.io"},
		{"*", "."}, {"a*b*c", "abcbc"}, {"a**b", "ab"}, {"cilium.io.", "CILIUM.IO"}, {"*.*", "a..b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		sel := FQDNSelector{MatchPattern: pattern}
		m, err := CompileFQDNSelector(sel)
		if err != nil {
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("matchPattern %q: ", pattern)) &&
				err.Error() != "fqdn selector: one of matchName or matchPattern is required" {
				t.Fatalf("error does not name the field and value: %v", err)
			}
			return
		}
		if got, want := m.Match(name), fqdnOracle(t, sel)(name); got != want {
			t.Fatalf("%s: Match(%q) = %v, oracle says %v", m, name, got, want)
		}
	})
}

var (
	dnsIP1 = netip.MustParseAddr("192.0.2.1")
	dnsIP2 = netip.MustParseAddr("192.0.2.2")
	dnsIP3 = netip.MustParseAddr("2001:db8::3")
	dnsIP4 = netip.MustParseAddr("192.0.2.4")
)

var dnsT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestDNSCacheObserveLookupExpire(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(dnsT0)
	c := NewDNSCache(DNSCacheConfig{Clock: clk})

	c.Observe(DNSAnswer{Name: "API.Example.com", IPs: []netip.Addr{dnsIP2, dnsIP1}, TTL: 10 * time.Second})
	c.Observe(DNSAnswer{Name: "db.example.com.", IPs: []netip.Addr{dnsIP3, netip.AddrFrom16(dnsIP4.As16())}, TTL: 30 * time.Second})
	c.Observe(DNSAnswer{Name: "", IPs: []netip.Addr{dnsIP1}, TTL: time.Hour})                            // no name: ignored
	c.Observe(DNSAnswer{Name: "empty.example.com", TTL: time.Hour})                                      // no addresses: ignored
	c.Observe(DNSAnswer{Name: "zero.example.com", IPs: []netip.Addr{{}}, TTL: time.Hour})                // invalid address: ignored
	c.Observe(DNSAnswer{Name: "ttl0.example.com", IPs: []netip.Addr{dnsIP1}, TTL: 0})                    // expires at once
	c.Observe(DNSAnswer{Name: "negative.example.com", IPs: []netip.Addr{dnsIP1}, TTL: -1 * time.Second}) // likewise

	for _, n := range []string{"api.example.com", "API.EXAMPLE.COM.", "api.example.com."} {
		if diff := cmp.Diff([]netip.Addr{dnsIP1, dnsIP2}, c.Lookup(n), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Errorf("Lookup(%q) (-want +got):\n%s", n, diff)
		}
	}
	// IPv4-mapped IPv6 is stored as IPv4.
	if diff := cmp.Diff([]netip.Addr{dnsIP4, dnsIP3}, c.Lookup("db.example.com"), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("Lookup(db) (-want +got):\n%s", diff)
	}
	for _, n := range []string{"empty.example.com", "zero.example.com", "ttl0.example.com", "unknown.example.com", ""} {
		if got := c.Lookup(n); got != nil {
			t.Errorf("Lookup(%q) = %v, want nil", n, got)
		}
	}
	if diff := cmp.Diff([]string{"api.example.com.", "db.example.com."}, c.Names()); diff != "" {
		t.Errorf("Names() (-want +got):\n%s", diff)
	}

	// Expire drops the answers that were never visible.
	if diff := cmp.Diff([]string{"negative.example.com.", "ttl0.example.com."}, c.Expire()); diff != "" {
		t.Errorf("Expire() at dnsT0 (-want +got):\n%s", diff)
	}
	if got := c.Expire(); got != nil {
		t.Errorf("second Expire() = %v, want nil", got)
	}

	// Refresh dnsIP1 only; at dnsT0+10s dnsIP2 expires (expiry is exclusive), dnsIP1 stays.
	clk.SetTime(dnsT0.Add(5 * time.Second))
	c.Observe(DNSAnswer{Name: "api.example.com", IPs: []netip.Addr{dnsIP1}, TTL: 10 * time.Second})
	clk.SetTime(dnsT0.Add(10 * time.Second))
	if diff := cmp.Diff([]netip.Addr{dnsIP1}, c.Lookup("api.example.com"), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("Lookup after dnsIP2 expired (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"api.example.com."}, c.Expire()); diff != "" {
		t.Errorf("Expire() at dnsT0+10s (-want +got):\n%s", diff)
	}

	// A shorter TTL does not shorten a known address's expiry.
	c.Observe(DNSAnswer{Name: "api.example.com", IPs: []netip.Addr{dnsIP1}, TTL: time.Second})
	clk.SetTime(dnsT0.Add(14 * time.Second))
	if diff := cmp.Diff([]netip.Addr{dnsIP1}, c.Lookup("api.example.com"), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("Lookup after short-TTL refresh (-want +got):\n%s", diff)
	}

	clk.SetTime(dnsT0.Add(time.Minute))
	if got := c.Names(); got != nil {
		t.Errorf("Names() after everything expired = %v, want nil", got)
	}
	if diff := cmp.Diff([]string{"api.example.com.", "db.example.com."}, c.Expire()); diff != "" {
		t.Errorf("Expire() at dnsT0+1m (-want +got):\n%s", diff)
	}
	if len(c.entries) != 0 {
		t.Errorf("entries left after expiring everything: %v", c.entries)
	}
}

func TestDNSCacheMinTTL(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(dnsT0)
	c := NewDNSCache(DNSCacheConfig{Clock: clk, MinTTL: time.Minute})
	c.Observe(DNSAnswer{Name: "short.io", IPs: []netip.Addr{dnsIP1}, TTL: time.Second})
	c.Observe(DNSAnswer{Name: "long.io", IPs: []netip.Addr{dnsIP2}, TTL: time.Hour})
	clk.SetTime(dnsT0.Add(59 * time.Second))
	if diff := cmp.Diff([]string{"long.io.", "short.io."}, c.Names()); diff != "" {
		t.Errorf("Names() before MinTTL (-want +got):\n%s", diff)
	}
	clk.SetTime(dnsT0.Add(time.Minute))
	if diff := cmp.Diff([]string{"short.io."}, c.Expire()); diff != "" {
		t.Errorf("Expire() at MinTTL (-want +got):\n%s", diff)
	}
	clk.SetTime(dnsT0.Add(time.Hour))
	if diff := cmp.Diff([]string{"long.io."}, c.Expire()); diff != "" {
		t.Errorf("Expire() at TTL (-want +got):\n%s", diff)
	}
}

func TestDNSCacheMaxIPsPerName(t *testing.T) {
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}) }
	clk := clocktesting.NewFakePassiveClock(dnsT0)
	c := NewDNSCache(DNSCacheConfig{Clock: clk, MaxIPsPerName: 3})

	c.Observe(DNSAnswer{Name: "s3.io", IPs: []netip.Addr{addr(1), addr(2)}, TTL: time.Hour})
	clk.SetTime(dnsT0.Add(time.Second))
	c.Observe(DNSAnswer{Name: "s3.io", IPs: []netip.Addr{addr(3)}, TTL: time.Hour})
	clk.SetTime(dnsT0.Add(2 * time.Second))
	c.Observe(DNSAnswer{Name: "s3.io", IPs: []netip.Addr{addr(1)}, TTL: time.Hour}) // refreshes 1
	clk.SetTime(dnsT0.Add(3 * time.Second))
	c.Observe(DNSAnswer{Name: "s3.io", IPs: []netip.Addr{addr(4)}, TTL: time.Hour}) // evicts 2, the least recently seen
	want := []netip.Addr{addr(1), addr(3), addr(4)}
	if diff := cmp.Diff(want, c.Lookup("s3.io"), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("Lookup after eviction (-want +got):\n%s", diff)
	}
	// One answer larger than the cap keeps the lowest addresses of that answer (same age and
	// expiry, so the address order decides) after the older ones are gone.
	c.Observe(DNSAnswer{Name: "s3.io", IPs: []netip.Addr{addr(9), addr(8), addr(7), addr(6), addr(5)}, TTL: time.Hour})
	want = []netip.Addr{addr(7), addr(8), addr(9)}
	if diff := cmp.Diff(want, c.Lookup("s3.io"), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("Lookup after oversized answer (-want +got):\n%s", diff)
	}

	// The default cap is 50.
	d := NewDNSCache(DNSCacheConfig{Clock: clk})
	var many []netip.Addr
	for i := 0; i < 60; i++ {
		many = append(many, addr(i))
	}
	d.Observe(DNSAnswer{Name: "many.io", IPs: many, TTL: time.Hour})
	if got := len(d.Lookup("many.io")); got != DefaultMaxIPsPerName {
		t.Errorf("default cap kept %d addresses, want %d", got, DefaultMaxIPsPerName)
	}
}

func TestDNSCacheMatch(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(dnsT0)
	c := NewDNSCache(DNSCacheConfig{Clock: clk})
	c.Observe(DNSAnswer{Name: "a.cilium.io", IPs: []netip.Addr{dnsIP1, dnsIP2}, TTL: time.Minute})
	c.Observe(DNSAnswer{Name: "B.cilium.io", IPs: []netip.Addr{dnsIP2, dnsIP3}, TTL: time.Hour})
	c.Observe(DNSAnswer{Name: "x.b.cilium.io", IPs: []netip.Addr{dnsIP4}, TTL: time.Hour})
	c.Observe(DNSAnswer{Name: "cilium.io", IPs: []netip.Addr{dnsIP4}, TTL: time.Hour})

	for _, tc := range []struct {
		sel     FQDNSelector
		at      time.Duration
		wantIPs []netip.Addr
	}{
		{FQDNSelector{MatchPattern: "*.cilium.io"}, 0, []netip.Addr{dnsIP1, dnsIP2, dnsIP3}},
		{FQDNSelector{MatchPattern: "*.cilium.io"}, time.Minute, []netip.Addr{dnsIP2, dnsIP3}},
		{FQDNSelector{MatchPattern: "**.cilium.io"}, 0, []netip.Addr{dnsIP1, dnsIP2, dnsIP4, dnsIP3}},
		{FQDNSelector{MatchName: "b.cilium.io"}, 0, []netip.Addr{dnsIP2, dnsIP3}},
		{FQDNSelector{MatchName: "cilium.io"}, 0, []netip.Addr{dnsIP4}},
		{FQDNSelector{MatchName: "none.io"}, 0, nil},
		{FQDNSelector{MatchPattern: "*"}, 2 * time.Hour, nil},
	} {
		t.Run(fmt.Sprintf("%s@%s", tc.sel.MatchName+tc.sel.MatchPattern, tc.at), func(t *testing.T) {
			clk.SetTime(dnsT0.Add(tc.at))
			m, err := CompileFQDNSelector(tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantIPs, c.Match(m), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("Match(%s) (-want +got):\n%s", m, diff)
			}
		})
	}
}

func TestDNSCacheConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  DNSCacheConfig
		want string
	}{
		{DNSCacheConfig{}, ""},
		{DNSCacheConfig{MinTTL: time.Second, MaxIPsPerName: 1}, ""},
		{DNSCacheConfig{MinTTL: -time.Second}, "invalid policy engine config: DNSCacheConfig.MinTTL=-1s: must not be negative"},
		{DNSCacheConfig{MaxIPsPerName: -1}, "invalid policy engine config: DNSCacheConfig.MaxIPsPerName=-1: must not be negative (0 means the default, 50)"},
	} {
		err := tc.cfg.Validate()
		var got string
		if err != nil {
			got = err.Error()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate(%+v) = %v, not ErrInvalidConfig", tc.cfg, err)
			}
		}
		if got != tc.want {
			t.Errorf("Validate(%+v) = %q, want %q", tc.cfg, got, tc.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("NewDNSCache with a negative MinTTL did not panic")
		}
	}()
	NewDNSCache(DNSCacheConfig{MinTTL: -1})
}

func TestDNSCacheZeroValue(t *testing.T) {
	var c DNSCache
	if c.Lookup("a.io") != nil || c.Names() != nil || c.Expire() != nil || c.Match(&FQDNMatcher{all: true}) != nil {
		t.Error("empty zero DNSCache returned something")
	}
	c.Observe(DNSAnswer{Name: "a.io", IPs: []netip.Addr{dnsIP1}, TTL: time.Hour})
	if diff := cmp.Diff([]netip.Addr{dnsIP1}, c.Lookup("a.io"), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("zero DNSCache Lookup (-want +got):\n%s", diff)
	}
}

func TestDNSCacheConcurrent(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(dnsT0)
	var src DNSSource = NewDNSCache(DNSCacheConfig{Clock: clk, MaxIPsPerName: 5})
	c := src.(*DNSCache)
	m, err := CompileFQDNSelector(FQDNSelector{MatchPattern: "**.io"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := 0; i < 200; i++ {
				name := fmt.Sprintf("n%d.w%d.io", i%7, w)
				src.Observe(DNSAnswer{Name: name, IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(w), 0, byte(i)})}, TTL: time.Duration(i%3) * time.Second})
				c.Lookup(name)
				c.Match(m)
				c.Names()
				if i%50 == 0 {
					c.Expire()
					clk.SetTime(clk.Now().Add(time.Second))
				}
			}
		})
	}
	wg.Wait()
	for _, n := range c.Names() {
		if got := len(c.Lookup(n)); got > 5 {
			t.Errorf("%s has %d addresses, cap is 5", n, got)
		}
	}
}
