package azure

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
)

// FuzzValidate decodes fuzzer-provided JSON into a ClusterSpec and checks Validate and what
// relies on it: Validate never panics and reports a *ValidationError whose every problem names
// a field and a code; defaulting is idempotent and keeps a valid spec valid; a valid spec maps to
// a ManagedCluster, plans a create, and after that plan is applied plans nothing more. The seed
// corpus is in testdata/fuzz/FuzzValidate, with the package's valid fixtures added here.
func FuzzValidate(f *testing.F) {
	for _, s := range []ClusterSpec{fxOverlay(), fxPodSubnet(), fxNodeSubnet(), fxKubenet(), fxAzureCNI()} {
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			return
		}
		var s ClusterSpec
		if err := json.Unmarshal(data, &s); err != nil {
			return
		}
		d := s.WithDefaults()
		if dd := d.WithDefaults(); !reflect.DeepEqual(d, dd) {
			t.Fatalf("WithDefaults is not idempotent:\n once %+v\ntwice %+v", d, dd)
		}
		err := Validate(s)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate returned %T, want *ValidationError: %v", err, err)
			}
			if len(ve.Problems) == 0 {
				t.Fatalf("ValidationError without problems")
			}
			for _, p := range ve.Problems {
				if p.Field == "" || p.Code == "" || p.Message == "" {
					t.Fatalf("problem without a field, code or message: %+v", p)
				}
			}
			if _, merr := s.ManagedCluster(); merr == nil {
				t.Fatalf("ManagedCluster accepts a spec Validate rejects (%v)", err)
			}
			if _, perr := Plan(t.Context(), s, nil); perr == nil {
				t.Fatalf("Plan accepts a spec Validate rejects (%v)", err)
			}
			return
		}
		if err := Validate(d); err != nil {
			t.Fatalf("the defaulted form of a valid spec is invalid: %v", err)
		}
		if _, err := s.ManagedCluster(); err != nil {
			t.Fatalf("ManagedCluster of a valid spec: %v", err)
		}
		p, err := Plan(t.Context(), s, nil)
		if err != nil {
			t.Fatalf("Plan(create) of a valid spec: %v", err)
		}
		if len(p.Steps) == 0 || p.Steps[len(p.Steps)-1].Kind != KindManagedCluster {
			t.Fatalf("create plan does not end with the cluster:\n%s", planJSON(t, p))
		}
		if _, err := json.Marshal(p); err != nil {
			t.Fatalf("marshal plan: %v", err)
		}
		// Applying the plan and planning again yields nothing.
		after := applyPlan(t, nil, p)
		after.ID = to.Ptr(d.ResourceID())
		again, err := Plan(t.Context(), s, &after)
		if err != nil {
			t.Fatalf("Plan after applying the create plan: %v\n%s", err, planJSON(t, p))
		}
		if len(again.Steps) != 0 {
			t.Fatalf("Plan after applying the create plan has %d steps, want 0:\n%s", len(again.Steps), planJSON(t, again))
		}
	})
}
