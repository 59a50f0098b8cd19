package identity

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// defaultPatterns is Cilium v1.20.2's default label filter
// (pkg/labelsfilter/filter.go:defaultLabelPrefixCfg), in its
// "[source:][!]regexp" form. Entries starting with '!' are ignore rules.
var defaultPatterns = [...]string{
	`reserved:.*`,
	`io\.kubernetes\.pod\.namespace`,
	`io\.cilium\.k8s\.namespace\.labels`,
	`app\.kubernetes\.io`,
	`io\.cilium\.k8s\.policy\.cluster`,
	`io\.cilium\.k8s\.policy\.serviceaccount`,
	`!io\.kubernetes`,
	`!kubernetes\.io`,
	`!statefulset\.kubernetes\.io/pod-name`,
	`!apps\.kubernetes\.io/pod-index`,
	`!batch\.kubernetes\.io/job-completion-index`,
	`!batch\.kubernetes\.io/controller-uid`,
	`!.*beta\.kubernetes\.io`,
	`!k8s\.io`,
	`!pod-template-generation`,
	`!pod-template-hash`,
	`!controller-revision-hash`,
	`!controller-uid`,
	`!annotation.*`,
	`!etcd_node`,
	`!topology\.kubernetes\.io`,
}

// reservedPattern is always part of a filter: Cilium needs reserved labels
// to reach identities.
const reservedPattern = "reserved:.*"

// FilterConfig selects which labels are security-relevant, with the rules of
// Cilium's --labels option. The zero value is Cilium v1.20.2's default
// filter (see [Filter.Patterns] for the list).
//
// Each entry is "[source:]regexp". The regexp must match at the start of the
// label key; with a source, only labels of that source match. A label is
// relevant when the longest matching Include (or default include) pattern is
// longer than the shortest matching Exclude pattern, or, while no Include is
// configured, when no Exclude pattern matches. As in Cilium, any Include entry
// switches the filter to include-only mode: labels no include pattern matches
// are then ignored.
type FilterConfig struct {
	// Include lists patterns of labels to keep, in addition to the
	// defaults. Setting any switches to include-only mode. Default: none.
	Include []string
	// Exclude lists patterns of labels to ignore, in addition to the
	// defaults. Entries may carry Cilium's '!' marker, as "!regexp" or
	// "source:!regexp"; it is optional here. Default: none.
	Exclude []string
	// NoDefaults drops Cilium's default patterns, except "reserved:.*",
	// which is always kept. Default: false.
	NoDefaults bool
}

// labelPattern is one compiled filter rule.
type labelPattern struct {
	source string
	expr   *regexp.Regexp // as configured, for String
	prefix *regexp.Regexp // expr anchored at the start of the key, for matching
	ignore bool
}

// String returns the rule in "[!][source:]regexp" form.
func (p labelPattern) String() string {
	s := p.expr.String()
	if p.source != "" {
		s = p.source + ":" + s
	}
	if p.ignore {
		s = "!" + s
	}
	return s
}

// match reports whether p matches l and, if so, the length of the matched
// section of the key, as Cilium's LabelPrefix.matches.
func (p labelPattern) match(l Label) (int, bool) {
	if p.source != "" && p.source != l.Source {
		return 0, false
	}
	// Anchoring finds the same match as Cilium's unanchored search that must start at 0 (the
	// leftmost match is preferred), without scanning the rest of the key.
	loc := p.prefix.FindStringIndex(l.Key)
	if loc == nil {
		return 0, false
	}
	return loc[1], true
}

// parsePattern parses "[source:][!]regexp" as Cilium's parseLabelPrefix.
func parsePattern(s string) (labelPattern, error) {
	var p labelPattern
	expr := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		p.source, expr = s[:i], s[i+1:]
	}
	if rest, ok := strings.CutPrefix(expr, "!"); ok {
		p.ignore, expr = true, rest
	}
	if expr == "" {
		return labelPattern{}, errors.New("empty regexp")
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return labelPattern{}, err
	}
	p.expr = re
	p.prefix = regexp.MustCompile("^(?:" + expr + ")")
	return p, nil
}

// compile returns the patterns of cfg and whether include-only mode is on.
func (cfg FilterConfig) compile() ([]labelPattern, bool, error) {
	base := defaultPatterns[:]
	if cfg.NoDefaults {
		base = []string{reservedPattern}
	}
	ps := make([]labelPattern, 0, len(base)+len(cfg.Include)+len(cfg.Exclude))
	for _, s := range base {
		p, err := parsePattern(s)
		if err != nil {
			return nil, false, fmt.Errorf("compile default label filter %q: %w", s, err)
		}
		ps = append(ps, p)
	}
	for i, s := range cfg.Include {
		p, err := parsePattern(s)
		if err != nil {
			return nil, false, fmt.Errorf("invalid label filter Include[%d] %q: %w", i, s, err)
		}
		if p.ignore {
			return nil, false, fmt.Errorf("invalid label filter Include[%d] %q: '!' marks an exclude pattern; put it in Exclude", i, s)
		}
		ps = append(ps, p)
	}
	for i, s := range cfg.Exclude {
		p, err := parsePattern(strings.TrimPrefix(s, "!"))
		if err != nil {
			return nil, false, fmt.Errorf("invalid label filter Exclude[%d] %q: %w", i, s, err)
		}
		p.ignore = true
		ps = append(ps, p)
	}
	return ps, len(cfg.Include) > 0, nil
}

// Validate reports the first malformed pattern, naming its field, index and
// value, for example `invalid label filter Include[2] "k8s:(": error parsing
// regexp: missing closing ): ...`. Empty entries are errors.
func (cfg FilterConfig) Validate() error {
	_, _, err := cfg.compile()
	return err
}

// Filter splits labels into security-relevant and ignored ones. A *Filter is
// immutable and safe for concurrent use. The zero Filter is not usable; build
// one with [NewFilter] or [DefaultFilter].
type Filter struct {
	patterns    []labelPattern
	includeOnly bool

	// memo caches the verdict per "source:key" (values do not matter), up to memoMax entries:
	// a cluster has few distinct label keys, and every allocation filters its labels.
	memo  sync.Map
	memoN atomic.Int64
}

const memoMax = 1 << 14

// NewFilter validates cfg and compiles it.
func NewFilter(cfg FilterConfig) (*Filter, error) {
	ps, includeOnly, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	return &Filter{patterns: ps, includeOnly: includeOnly}, nil
}

// DefaultFilter returns a filter with Cilium v1.20.2's default patterns, the
// same as NewFilter(FilterConfig{}). Each call compiles a new filter; keep and
// share the result.
func DefaultFilter() *Filter {
	f, err := NewFilter(FilterConfig{})
	if err != nil {
		panic(fmt.Sprintf("identity: default label filter does not compile: %v", err))
	}
	return f
}

// Filter returns the labels of l that are security-relevant (they make up the
// identity) and those that are ignored, both normalized. l is not modified.
func (f *Filter) Filter(l Labels) (relevant, ignored Labels) {
	for _, lbl := range l.sorted() {
		if f.relevant(lbl) {
			relevant = append(relevant, lbl)
		} else {
			ignored = append(ignored, lbl)
		}
	}
	return relevant, ignored
}

// relevant applies Cilium's filterLabels rule to one label: the longest
// matching include must beat the shortest matching ignore; without any
// configured include, a label no ignore pattern matches is kept too.
func (f *Filter) relevant(l Label) bool {
	mk := l.Source + ":" + l.Key
	if v, ok := f.memo.Load(mk); ok {
		return v.(bool)
	}
	r := f.evaluate(l)
	if f.memoN.Load() < memoMax {
		if _, loaded := f.memo.LoadOrStore(mk, r); !loaded {
			f.memoN.Add(1)
		}
	}
	return r
}

// evaluate applies the patterns to l.
func (f *Filter) evaluate(l Label) bool {
	included, ignored := 0, 0
	for _, p := range f.patterns {
		n, ok := p.match(l)
		if !ok {
			continue
		}
		if p.ignore {
			if ignored == 0 || n < ignored {
				ignored = n
			}
		} else if n > included {
			included = n
		}
	}
	return (!f.includeOnly && ignored == 0) || included > ignored
}

// Patterns returns the filter's rules in order, as "[!][source:]regexp"
// strings: defaults first, then Include, then Exclude. The slice is freshly
// allocated.
func (f *Filter) Patterns() []string {
	out := make([]string, len(f.patterns))
	for i, p := range f.patterns {
		out[i] = p.String()
	}
	return out
}
