package azure

import (
	"context"
	"testing"
)

// BenchmarkValidate measures validating a pod-subnet cluster with a VNet (every rule runs).
func BenchmarkValidate(b *testing.B) {
	s := fxPodSubnet()
	for b.Loop() {
		if err := Validate(s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/validate")
}

// BenchmarkPlan measures planning the Azure CNI → Cilium update from a live cluster (validation,
// update validation, body construction and serialization included).
func BenchmarkPlan(b *testing.B) {
	desired, current := fxNodeSubnet(), live(fxAzureCNI())
	ctx := context.Background()
	for b.Loop() {
		p, err := Plan(ctx, desired, current)
		if err != nil || len(p.Steps) != 1 {
			b.Fatal(err, p)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/plan")
}
