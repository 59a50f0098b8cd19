package observe_test

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/observe/metrics"
)

func ExampleNewPrometheusRegistry() {
	// A registry of the program's own: nothing goes into Prometheus' global one.
	reg := prometheus.NewRegistry()
	r := observe.NewPrometheusRegistry(reg)

	// What a component instrumented with observe/metrics alone does: requests is a
	// metrics.Counter.
	requests, err := r.Counter(metrics.Opts{
		Name:   "example_requests_total",
		Help:   "Requests handled, by code",
		Labels: []string{"code"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	requests.Add(1, "200")
	requests.Add(1, "200")
	requests.Add(1, "503")
	requests.Add(1)            // wrong number of label values: dropped and counted, no panic
	requests.Add(-1, "200")    // a counter never decreases: dropped and counted
	requests.Add(1, "200", "") // too many label values

	// The same name twice is an error, never a panic.
	_, err = r.Counter(metrics.Opts{Name: "example_requests_total", Help: "Requests handled, by code", Labels: []string{"code"}})
	fmt.Println(err != nil)
	// So are invalid options; the error names the field.
	_, err = r.Gauge(metrics.Opts{Name: "example-queue", Help: "Queue length"})
	fmt.Println(err)

	families, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			fmt.Print(f.GetName())
			for _, l := range s.GetLabel() {
				fmt.Printf(" %s=%q", l.GetName(), l.GetValue())
			}
			fmt.Println(":", s.GetCounter().GetValue())
		}
	}
	// Output:
	// true
	// invalid metric options: Name "example-queue" is not a valid metric name
	// ceskit_metrics_errors_total metric="example_requests_total": 3
	// example_requests_total code="200": 2
	// example_requests_total code="503": 1
}
