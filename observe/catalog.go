package observe

import (
	"context"
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
	// Component is the adapter that registers the metric: "slicer", "watcher", "identity",
	// "policy", "datapath" or "flow". A metric several adapters share lists them all, in that
	// order, separated by ", ": cilium_bpf_map_pressure is "policy, datapath", and
	// ceskit_metrics_errors_total, the error counter of the generic registry
	// ([NewPrometheusRegistry]) that the policy, datapath and flow adapters are built on, is
	// "policy, datapath, flow".
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
	{"policy", func(reg prometheus.Registerer) error {
		m, err := NewPolicyMetrics(reg)
		if err != nil {
			return err
		}
		m.Update("policy", 0, 0)
		return nil
	}},
	{"datapath", func(reg prometheus.Registerer) error {
		m, err := NewDatapathMetrics(reg)
		if err != nil {
			return err
		}
		m.MapPressure("ceskit_policy", 0, 1)
		m.MapOps("ceskit_policy", "update", "success", 0)
		return nil
	}},
	{"flow", func(reg prometheus.Registerer) error {
		m, err := NewFlowMetrics(reg)
		if err != nil {
			return err
		}
		if err := m.Write(context.Background(), Record{Flow: &Flow{
			Verdict: VerdictDropped, DropReasonDesc: DropPolicyDenied, TrafficDirection: DirectionIngress,
			EventType: &EventType{Type: EventTypePolicyVerdict},
		}}); err != nil {
			return err
		}
		return m.Write(context.Background(), Record{Event: &Event{Kind: EventKindEndpoint, Action: ActionCreated}})
	}},
}

// Catalog returns every metric of ceskit's Prometheus adapters ([NewSlicerMetrics],
// [NewWatcherMetrics], [NewIdentityMetrics], [NewPolicyMetrics], [NewDatapathMetrics],
// [NewFlowMetrics]), sorted by name. It registers each adapter into a fresh registry of its own
// and reads the metrics back, so the result always matches the code. A metric several adapters
// register (the same name, type, help and labels) is listed once, with every adapter in
// Component; a name two adapters register differently is an error. It is safe for concurrent
// use.
func Catalog() ([]MetricInfo, error) {
	var out []MetricInfo
	seen := map[string]int{} // name → index in out
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
			info := MetricInfo{
				Name:      mf.GetName(),
				Type:      typ,
				Help:      mf.GetHelp(),
				Labels:    labels,
				Component: c.name,
			}
			if i, ok := seen[info.Name]; ok {
				prev := out[i]
				if prev.Type != info.Type || prev.Help != info.Help || !slices.Equal(prev.Labels, info.Labels) {
					return nil, fmt.Errorf("catalog %s metrics: metric %s is also registered, differently, by %s", c.name, info.Name, prev.Component)
				}
				out[i].Component += ", " + c.name
				continue
			}
			seen[info.Name] = len(out)
			out = append(out, info)
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
