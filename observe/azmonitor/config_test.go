package azmonitor

import (
	"errors"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/google/go-cmp/cmp"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Endpoint: "https://dce.westeurope-1.ingest.monitor.azure.com", RuleID: "dcr-1", Credential: &azfake.TokenCredential{}}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string
		value string
	}{
		{"valid", func(*Config) {}, "", ""},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "Endpoint", `""`},
		{"relative endpoint", func(c *Config) { c.Endpoint = "dce.example" }, "Endpoint", "dce.example"},
		{"ftp endpoint", func(c *Config) { c.Endpoint = "ftp://dce.example" }, "Endpoint", "ftp://dce.example"},
		{"no rule", func(c *Config) { c.RuleID = "" }, "RuleID", `""`},
		{"no credential", func(c *Config) { c.Credential = nil }, "Credential", "nil"},
		{"batch too big", func(c *Config) { c.MaxBatchBytes = 2 << 20 }, "MaxBatchBytes", "2097152"},
		{"batch tiny", func(c *Config) { c.MaxBatchBytes = 3 }, "MaxBatchBytes", "3"},
		{"negative records", func(c *Config) { c.MaxBatchRecords = -1 }, "MaxBatchRecords", "-1"},
		{"negative buffer", func(c *Config) { c.BufferRecords = -5 }, "BufferRecords", "-5"},
		{"negative interval", func(c *Config) { c.FlushInterval = -time.Second }, "FlushInterval", "-1s"},
		{"negative try timeout", func(c *Config) { c.TryTimeout = -time.Second }, "TryTimeout", "-1s"},
		{"backoff inverted", func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second }, "MinBackoff", "1m0s"},
		{"unknown policy", func(c *Config) { c.Overflow = 7 }, "Overflow", "OverflowPolicy(7)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate: %v, want a *ConfigError", err)
			}
			if diff := cmp.Diff([2]string{tc.field, tc.value}, [2]string{ce.Field, ce.Value}); diff != "" {
				t.Errorf("field, value (-want +got):\n%s", diff)
			}
			if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New: %v", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	got := []any{c.Stream, c.MaxBatchBytes, c.MaxBatchRecords, c.FlushInterval, c.BufferRecords, c.Overflow,
		c.MaxRetries, c.MinBackoff, c.MaxBackoff, c.TryTimeout, c.DisableGzip}
	want := []any{StreamName, 1 << 20, 0, 5 * time.Second, 10000, DropOldest,
		8, 500 * time.Millisecond, 60 * time.Second, 30 * time.Second, false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if c.Clock == nil || c.Logger == nil {
		t.Error("Clock or Logger not defaulted")
	}
	if got := (Config{MaxRetries: -1}).withDefaults().MaxRetries; got != 0 {
		t.Errorf("MaxRetries -1 became %d, want 0 retries", got)
	}
}

func TestNewLeavesClientOptionsAlone(t *testing.T) {
	cfg := fakeConfig(Config{}, nil)
	cfg.ClientOptions.Retry.MaxRetries = 3
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ClientOptions.Retry.MaxRetries != 3 {
		t.Errorf("New changed the caller's ClientOptions")
	}
}
