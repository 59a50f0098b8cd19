package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// MaxFQDNLength is the longest matchName or matchPattern accepted, as in Cilium
// (pkg/fqdn/matchpattern MaxFQDNLength).
const MaxFQDNLength = 255

// FQDNSelector selects DNS names the way a CiliumNetworkPolicy toFQDNs entry or a DNS L7 rule
// (rules.dns) does. Exactly one of the two fields is set.
type FQDNSelector struct {
	// MatchName is a literal DNS name, compared case-insensitively; a trailing "." is optional.
	// Characters: letters, digits, '-', '_' and '.'.
	MatchName string
	// MatchPattern is a DNS name with wildcards, compared case-insensitively; a trailing "."
	// is optional. Characters: those of MatchName plus '*'.
	//
	//   - "*" inside a label matches zero or more DNS characters (letters, digits, '-', '_'),
	//     never a '.': "*.cilium.io" matches "sub.cilium.io" but neither "cilium.io" nor
	//     "a.b.cilium.io"; "sub*.cilium.io" matches "sub.cilium.io" and "subway.cilium.io".
	//   - A leading "*" not followed by '.' may match nothing, so "*cilium.io" matches
	//     "cilium.io" and "mycilium.io" (but not "www.cilium.io": the star stays in its label).
	//   - "*" alone (or "*.") matches every name, the root "." included.
	//   - A leading "**." matches one or more whole labels: "**.cilium.io" matches
	//     "a.cilium.io" and "a.b.cilium.io", not "cilium.io".
	//
	// Stricter than Cilium, which collapses runs of stars: "**" is accepted only as that
	// leading "**." prefix, and runs of three or more stars are rejected, so that a pattern
	// has exactly one reading.
	MatchPattern string
}

// FQDNMatcher is a compiled [FQDNSelector]. It is immutable and safe for concurrent use. Build
// one with [CompileFQDNSelector]; the zero FQDNMatcher matches nothing.
type FQDNMatcher struct {
	// label is the selector's value, lowercased, as written (no trailing dot added).
	label string
	// name is the normalized literal name for matchName (lowercase, trailing dot); empty
	// for patterns.
	name string
	// all is set for the match-everything pattern ("*" or "*.").
	all bool
	// anyDepth is set for a "**." prefix: one or more leading labels of the name are free.
	anyDepth bool
	// labels are the remaining pattern labels, root-most last, without the empty root
	// label; each label is split at its stars.
	labels []fqdnLabelPattern
}

// fqdnLabelPattern is one label of a matchPattern, split at its '*': "a*b*c" is
// {"a", "b", "c"}, "*" is {"", ""}, "abc" is {"abc"}.
type fqdnLabelPattern []string

// fqdnSelectorError is what CompileFQDNSelector returns: the field, its value and the reason.
type fqdnSelectorError struct {
	field  string // "matchName", "matchPattern" or "" for the selector as a whole
	value  string
	reason string
}

func (e *fqdnSelectorError) Error() string {
	if e.field == "" {
		return "fqdn selector: " + e.reason
	}
	return fmt.Sprintf("%s %q: %s", e.field, e.value, e.reason)
}

// CompileFQDNSelector checks s and compiles it into a matcher. Exactly one of MatchName and
// MatchPattern must be set, at most [MaxFQDNLength] characters, made of the allowed
// characters, without empty labels (a leading '.' or ".."). An error names the field and its
// value, e.g. `matchPattern "a**b": ...`.
func CompileFQDNSelector(s FQDNSelector) (*FQDNMatcher, error) {
	switch {
	case s.MatchName == "" && s.MatchPattern == "":
		return nil, &fqdnSelectorError{reason: "one of matchName or matchPattern is required"}
	case s.MatchName != "" && s.MatchPattern != "":
		return nil, &fqdnSelectorError{field: "matchPattern", value: s.MatchPattern,
			reason: fmt.Sprintf("may not be set together with matchName %q; set exactly one", s.MatchName)}
	case s.MatchName != "":
		return compileFQDNName(s.MatchName)
	default:
		return compileFQDNPattern(s.MatchPattern)
	}
}

func compileFQDNName(v string) (*FQDNMatcher, error) {
	bad := func(reason string) error {
		return &fqdnSelectorError{field: "matchName", value: v, reason: reason}
	}
	if len(v) > MaxFQDNLength {
		return nil, bad(fmt.Sprintf("must be at most %d characters, is %d", MaxFQDNLength, len(v)))
	}
	for i, r := range v {
		if r >= 0x80 || !isFQDNNameChar(byte(r)) {
			return nil, bad(fmt.Sprintf("invalid character %q at offset %d; only letters, digits, '-', '_' and '.' are allowed", r, i))
		}
	}
	if err := checkFQDNLabels(v); err != "" {
		return nil, bad(err)
	}
	lower := fqdnLower(v)
	return &FQDNMatcher{label: lower, name: fqdnAbsolute(lower)}, nil
}

func compileFQDNPattern(v string) (*FQDNMatcher, error) {
	bad := func(reason string) error {
		return &fqdnSelectorError{field: "matchPattern", value: v, reason: reason}
	}
	if len(v) > MaxFQDNLength {
		return nil, bad(fmt.Sprintf("must be at most %d characters, is %d", MaxFQDNLength, len(v)))
	}
	for i, r := range v {
		if r >= 0x80 || (r != '*' && !isFQDNNameChar(byte(r))) {
			return nil, bad(fmt.Sprintf("invalid character %q at offset %d; only letters, digits, '-', '_', '.' and '*' are allowed", r, i))
		}
	}
	lower := fqdnLower(v)
	m := &FQDNMatcher{label: lower}
	if lower == "*" || lower == "*." {
		m.all = true
		return m, nil
	}
	rest := lower
	if strings.HasPrefix(rest, "**.") {
		m.anyDepth = true
		rest = rest[len("**."):]
		if rest == "" || rest == "." {
			return nil, bad(`"**." must be followed by at least one label`)
		}
	}
	if i := strings.Index(rest, "**"); i >= 0 {
		if m.anyDepth {
			i += len("**.")
		}
		return nil, bad(fmt.Sprintf(`"**" at offset %d: a double star is only allowed as a leading "**." prefix, and runs of three or more stars are not allowed`, i))
	}
	if err := checkFQDNLabels(rest); err != "" {
		return nil, bad(err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(rest, "."), ".") {
		m.labels = append(m.labels, strings.Split(l, "*"))
	}
	return m, nil
}

// checkFQDNLabels reports an empty label: a leading '.', "..", or a lone ".".
func checkFQDNLabels(v string) string {
	switch {
	case v == ".":
		return "the root name alone cannot be selected"
	case strings.HasPrefix(v, "."):
		return "must not start with '.'"
	case strings.Contains(v, ".."):
		return `empty label ("..")`
	}
	return ""
}

// String returns the selector in Cilium's identity label form, "fqdn:" followed by the
// matchName or matchPattern as written (no trailing dot added), lowercased so that selectors
// differing only in case share one label.
func (m *FQDNMatcher) String() string {
	return "fqdn:" + m.label
}

// Match reports whether name is selected. The comparison ignores ASCII case and whether
// either side ends in '.'. A name that is not a syntactically valid DNS name (an empty label
// other than the root ".", a character outside letters, digits, '-', '_' and '.', or more
// than 256 characters) matches nothing; the empty string matches nothing.
func (m *FQDNMatcher) Match(name string) bool {
	if m == nil || name == "" || len(name) > MaxFQDNLength+1 {
		return false
	}
	name = fqdnAbsolute(fqdnLower(name))
	if !isFQDNName(name) {
		return false
	}
	switch {
	case m.all:
		return true
	case m.name != "":
		return name == m.name
	case len(m.labels) == 0:
		return false // zero FQDNMatcher
	}
	if name == "." {
		return false
	}
	nl := strings.Split(name[:len(name)-1], ".")
	if m.anyDepth {
		if len(nl) <= len(m.labels) {
			return false
		}
		nl = nl[len(nl)-len(m.labels):]
	} else if len(nl) != len(m.labels) {
		return false
	}
	for i, p := range m.labels {
		if !p.match(nl[i]) {
			return false
		}
	}
	return true
}

// match reports whether the label s (non-empty, lowercase DNS characters only) matches the
// pattern. With every character of s a DNS character, a star matches any substring, so the
// classic leftmost-greedy segment search is exact.
func (p fqdnLabelPattern) match(s string) bool {
	if len(p) == 1 {
		return s == p[0]
	}
	first, last := p[0], p[len(p)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	mid := s[len(first) : len(s)-len(last)]
	for _, seg := range p[1 : len(p)-1] {
		i := strings.Index(mid, seg)
		if i < 0 {
			return false
		}
		mid = mid[i+len(seg):]
	}
	return true
}

// isFQDNName reports whether the absolute name is the root or a sequence of non-empty labels
// of DNS characters.
func isFQDNName(name string) bool {
	if name == "." {
		return true
	}
	prevDot := true // the start acts like a preceding '.', so a leading '.' is an empty label
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '.' {
			if prevDot {
				return false
			}
			prevDot = true
			continue
		}
		if !isFQDNNameChar(c) {
			return false
		}
		prevDot = false
	}
	return true
}

func isFQDNNameChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '_' || c == '.'
}

// fqdnLower lowercases ASCII letters only (DNS case-insensitivity is ASCII-only, RFC 4343).
func fqdnLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// fqdnAbsolute adds the trailing '.' if missing.
func fqdnAbsolute(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// DNSAnswer is one observed DNS response: the queried name and the addresses it resolved to
// (A and AAAA records), valid for TTL.
type DNSAnswer struct {
	// Name is the queried name; case and a trailing '.' do not matter.
	Name string
	// IPs are the resolved addresses. IPv4-mapped IPv6 addresses are stored as IPv4; invalid
	// (zero) addresses are ignored.
	IPs []netip.Addr
	// TTL is how long the answer may be cached; the cache keeps it at least
	// DNSCacheConfig.MinTTL.
	TTL time.Duration
}

// DNSSource is what a DNS proxy or DNS observer feeds with every answer it sees for the
// endpoints it serves; [*DNSCache] implements it. Observe must not block for long: it is
// called on the DNS response path.
type DNSSource interface {
	Observe(DNSAnswer)
}

var _ DNSSource = (*DNSCache)(nil)

// DNSCacheConfig holds the optional settings of a [DNSCache]. The zero value is valid.
type DNSCacheConfig struct {
	// MinTTL is the shortest time an observed address is kept, whatever the answer's TTL
	// (Cilium's --tofqdns-min-ttl). Default 0: the answer's TTL is used as is, so an answer with
	// TTL 0 is never visible. Must not be negative.
	MinTTL time.Duration
	// MaxIPsPerName caps the addresses kept per name (Cilium's
	// --tofqdns-endpoint-max-ip-per-hostname, which Cilium applies per endpoint: keep one
	// DNSCache per endpoint for the same effect). When an answer takes a name over the cap,
	// the addresses observed least recently are evicted first (ties: earlier expiry first, then
	// lower address). Default (0) 50. Must not be negative.
	MaxIPsPerName int
	// Clock provides the current time. Default (nil) the real clock.
	Clock clock.PassiveClock
}

// DefaultMaxIPsPerName is the default of DNSCacheConfig.MaxIPsPerName, Cilium's default for
// --tofqdns-endpoint-max-ip-per-hostname.
const DefaultMaxIPsPerName = 50

// Validate reports a negative MinTTL or MaxIPsPerName as a *[ConfigError].
func (c DNSCacheConfig) Validate() error {
	if c.MinTTL < 0 {
		return &ConfigError{Field: "DNSCacheConfig.MinTTL", Value: c.MinTTL.String(), Reason: "must not be negative"}
	}
	if c.MaxIPsPerName < 0 {
		return &ConfigError{Field: "DNSCacheConfig.MaxIPsPerName", Value: fmt.Sprint(c.MaxIPsPerName), Reason: "must not be negative (0 means the default, 50)"}
	}
	return nil
}

// DNSCache remembers which addresses DNS names resolved to and until when, as learned from
// the answers fed to [DNSCache.Observe]. It is the name→IP side of toFQDNs policies: an
// [FQDNMatcher]'s addresses are [DNSCache.Match]. It does no I/O and starts no goroutines;
// callers run [DNSCache.Expire] when they want expired entries dropped (expired entries are
// already invisible to lookups). Unlike Cilium it keeps no "zombie" addresses for live
// connections.
//
// A DNSCache is safe for concurrent use. The zero DNSCache is usable and has the default
// configuration; [NewDNSCache] sets another one.
type DNSCache struct {
	mu      sync.RWMutex
	cfg     DNSCacheConfig // defaults filled
	entries map[string]map[netip.Addr]dnsCacheEntry
}

type dnsCacheEntry struct {
	seen    time.Time // last observation
	expires time.Time // visible while now is before this
}

// NewDNSCache returns an empty cache with cfg's settings (defaults filled in). It panics if
// cfg.Validate fails: a negative MinTTL or MaxIPsPerName is a programming error.
func NewDNSCache(cfg DNSCacheConfig) *DNSCache {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return &DNSCache{cfg: cfg}
}

func (c *DNSCache) now() time.Time {
	if c.cfg.Clock == nil {
		return time.Now()
	}
	return c.cfg.Clock.Now()
}

func (c *DNSCache) maxIPs() int {
	if c.cfg.MaxIPsPerName == 0 {
		return DefaultMaxIPsPerName
	}
	return c.cfg.MaxIPsPerName
}

// normalizeDNSName lowercases name and adds the trailing '.'; "" stays "".
func normalizeDNSName(name string) string {
	if name == "" {
		return ""
	}
	return fqdnAbsolute(fqdnLower(name))
}

// Observe records that a.Name resolved to a.IPs, each valid until now+max(a.TTL, MinTTL). An
// address already known for the name keeps the later of its old and new expiry. An answer
// without a name or without valid addresses changes nothing. Observe implements [DNSSource].
func (c *DNSCache) Observe(a DNSAnswer) {
	name := normalizeDNSName(a.Name)
	if name == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	ttl := max(a.TTL, c.cfg.MinTTL)
	expires := now.Add(ttl)
	ips := c.entries[name]
	for _, ip := range a.IPs {
		if !ip.IsValid() {
			continue
		}
		ip = ip.Unmap()
		if ips == nil {
			ips = make(map[netip.Addr]dnsCacheEntry, len(a.IPs))
			if c.entries == nil {
				c.entries = make(map[string]map[netip.Addr]dnsCacheEntry)
			}
			c.entries[name] = ips
		}
		e := dnsCacheEntry{seen: now, expires: expires}
		if old, ok := ips[ip]; ok && old.expires.After(e.expires) {
			e.expires = old.expires
		}
		ips[ip] = e
	}
	if over := len(ips) - c.maxIPs(); over > 0 {
		type kv struct {
			ip netip.Addr
			e  dnsCacheEntry
		}
		all := make([]kv, 0, len(ips))
		for ip, e := range ips {
			all = append(all, kv{ip, e})
		}
		slices.SortFunc(all, func(x, y kv) int {
			return cmp.Or(x.e.seen.Compare(y.e.seen), x.e.expires.Compare(y.e.expires), x.ip.Compare(y.ip))
		})
		for _, v := range all[:over] {
			delete(ips, v.ip)
		}
	}
}

// Lookup returns the unexpired addresses of name (case and trailing '.' do not matter),
// sorted, or nil.
func (c *DNSCache) Lookup(name string) []netip.Addr {
	name = normalizeDNSName(name)
	c.mu.RLock()
	defer c.mu.RUnlock()
	now := c.now()
	var out []netip.Addr
	for ip, e := range c.entries[name] {
		if now.Before(e.expires) {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Match returns the unexpired addresses of every name m matches, sorted and without
// duplicates, or nil.
func (c *DNSCache) Match(m *FQDNMatcher) []netip.Addr {
	c.mu.RLock()
	defer c.mu.RUnlock()
	now := c.now()
	var out []netip.Addr
	for name, ips := range c.entries {
		if !m.Match(name) {
			continue
		}
		for ip, e := range ips {
			if now.Before(e.expires) {
				out = append(out, ip)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Expire drops every expired address and returns, sorted, the names that lost at least one
// (a name left without addresses is forgotten).
func (c *DNSCache) Expire() (expired []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for name, ips := range c.entries {
		n := len(ips)
		for ip, e := range ips {
			if !now.Before(e.expires) {
				delete(ips, ip)
			}
		}
		if len(ips) != n {
			expired = append(expired, name)
		}
		if len(ips) == 0 {
			delete(c.entries, name)
		}
	}
	slices.Sort(expired)
	return expired
}

// Names returns, sorted, the normalized names (lowercase, trailing '.') that have at least one
// unexpired address.
func (c *DNSCache) Names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	now := c.now()
	var out []string
	for name, ips := range c.entries {
		for _, e := range ips {
			if now.Before(e.expires) {
				out = append(out, name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}
