package observe

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricInfo describes one metric family that ceskit's Prometheus adapters export.
type MetricInfo struct {
	// Name is the family name as exposed, without histogram suffixes.
	Name string
	// Type is "counter", "gauge" or "histogram".
	Type string
	// Help is the metric's help text.
	Help string
	// Labels are the label names the family's series carry (constant labels included), sorted.
	Labels []string
	// Component is the adapter that registers the metric: "slicer", "watcher" or "identity".
	Component string
}

// Series returns the series names a query can select for m: Name itself, or for a histogram
// Name_bucket, Name_sum and Name_count.
func (m MetricInfo) Series() []string {
	if m.Type == "histogram" {
		return []string{m.Name + "_bucket", m.Name + "_sum", m.Name + "_count"}
	}
	return []string{m.Name}
}

// catalogComponents lists every Prometheus adapter of this package and, for each, the calls that
// give every metric at least one series, so that gathering sees it. Catalog fails when an
// adapter describes a metric the calls leave without series; add a call here then.
var catalogComponents = []struct {
	name     string
	register func(prometheus.Registerer) error
}{
	{"slicer", func(reg prometheus.Registerer) error {
		m, err := NewSlicerMetrics(reg)
		if err != nil {
			return err
		}
		m.EndpointChanges("cepinserted", 1)
		m.QueueingDelay("fast", 0)
		return nil
	}},
	{"watcher", func(reg prometheus.Registerer) error {
		m, err := NewWatcherMetrics(reg)
		if err != nil {
			return err
		}
		m.SourceSwitch(watcherSources[0], watcherSources[1], "")
		return nil
	}},
	{"identity", func(reg prometheus.Registerer) error {
		m, err := NewIdentityMetrics(reg)
		if err != nil {
			return err
		}
		m.Allocation("created", 0)
		m.GCEntries("alive", 0)
		m.GCRun("success", 0)
		return nil
	}},
}

// Catalog returns every metric of ceskit's Prometheus adapters ([NewSlicerMetrics],
// [NewWatcherMetrics], [NewIdentityMetrics]), sorted by name. It registers each adapter into
// a fresh registry of its own and reads the metrics back, so the result always matches the code.
// It is safe for concurrent use.
func Catalog() ([]MetricInfo, error) {
	var out []MetricInfo
	seen := map[string]string{}
	for _, c := range catalogComponents {
		rec := &recordingRegisterer{reg: prometheus.NewRegistry()}
		if err := c.register(rec); err != nil {
			return nil, fmt.Errorf("catalog %s metrics: %w", c.name, err)
		}
		mfs, err := rec.reg.Gather()
		if err != nil {
			return nil, fmt.Errorf("catalog %s metrics: gather: %w", c.name, err)
		}
		gathered := map[string]bool{}
		for _, mf := range mfs {
			typ := strings.ToLower(mf.GetType().String())
			switch typ {
			case "counter", "gauge", "histogram":
			default:
				return nil, fmt.Errorf("catalog %s metrics: metric %s has unsupported type %s", c.name, mf.GetName(), typ)
			}
			if prev, ok := seen[mf.GetName()]; ok {
				return nil, fmt.Errorf("catalog %s metrics: metric %s is also registered by %s", c.name, mf.GetName(), prev)
			}
			seen[mf.GetName()] = c.name
			gathered[mf.GetName()] = true
			labels := []string{}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if !slices.Contains(labels, lp.GetName()) {
						labels = append(labels, lp.GetName())
					}
				}
			}
			sort.Strings(labels)
			out = append(out, MetricInfo{
				Name:      mf.GetName(),
				Type:      typ,
				Help:      mf.GetHelp(),
				Labels:    labels,
				Component: c.name,
			})
		}
		var missing []string
		for _, name := range rec.describedNames() {
			if !gathered[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("catalog %s metrics: %s: %w", c.name, strings.Join(missing, ", "), errNoSeries)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

var errNoSeries = errors.New("metric has no series after the catalog's sample calls")

// recordingRegisterer registers into reg and remembers what it registered, so Catalog can
// compare the metrics the adapters describe with those it gathered.
type recordingRegisterer struct {
	reg        *prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recordingRegisterer) Unregister(c prometheus.Collector) bool {
	if !r.reg.Unregister(c) {
		return false
	}
	r.collectors = slices.DeleteFunc(r.collectors, func(x prometheus.Collector) bool { return x == c })
	return true
}

// describedNames returns the fully-qualified names of every metric the registered collectors
// describe. prometheus.Desc keeps the name unexported; its String form is stable
// (`Desc{fqName: "name", ...}`) and is what the client library itself prints.
func (r *recordingRegisterer) describedNames() []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		for _, c := range r.collectors {
			c.Describe(ch)
		}
		close(ch)
	}()
	var names []string
	for d := range ch {
		s := d.String()
		_, rest, ok := strings.Cut(s, `fqName: "`)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, `"`)
		names = append(names, name)
	}
	return names
}
