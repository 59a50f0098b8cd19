package azmonitor

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs/fake"
)

// collector records what reached the service: how often each record (by Message) arrived, and
// the uncompressed size of each upload.
type collector struct {
	mu        sync.Mutex
	seen      map[string]int
	sizes     []int
	encodings []string
	rules     []string
	streams   []string
}

func newCollector() *collector { return &collector{seen: map[string]int{}} }

func (c *collector) add(rule, stream string, body []byte, encoding string) error {
	raw := body
	if encoding == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("gunzip: %w", err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return fmt.Errorf("gunzip: %w", err)
		}
	}
	var recs []struct{ Message string }
	if err := json.Unmarshal(raw, &recs); err != nil {
		return fmt.Errorf("decode upload: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		c.seen[r.Message]++
	}
	c.sizes = append(c.sizes, len(raw))
	c.encodings = append(c.encodings, encoding)
	c.rules = append(c.rules, rule)
	c.streams = append(c.streams, stream)
	return nil
}

func (c *collector) uploads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sizes)
}

// check fails unless every record arrived at most once, and returns how many arrived.
func (c *collector) check(t *testing.T) int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for m, n := range c.seen {
		if n != 1 {
			t.Errorf("record %q arrived %d times", m, n)
		}
	}
	return len(c.seen)
}

func (c *collector) has(msg string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[msg] > 0
}

func record(i int) []byte {
	return fmt.Appendf(nil, `{"TimeGenerated":"2026-01-02T03:04:05Z","EventType":"flow","Message":"r%d"}`, i)
}

type uploadFunc = func(ctx context.Context, ruleID, stream string, logs []byte, o *azlogs.UploadOptions) (azfake.Responder[azlogs.UploadResponse], azfake.ErrorResponder)

// ok answers 204 after recording the upload.
func (c *collector) ok(t *testing.T) uploadFunc {
	return func(_ context.Context, rule, stream string, logs []byte, o *azlogs.UploadOptions) (resp azfake.Responder[azlogs.UploadResponse], errResp azfake.ErrorResponder) {
		enc := ""
		if o != nil && o.ContentEncoding != nil {
			enc = *o.ContentEncoding
		}
		if err := c.add(rule, stream, logs, enc); err != nil {
			t.Error(err)
		}
		resp.SetResponse(http.StatusNoContent, azlogs.UploadResponse{}, nil)
		return resp, errResp
	}
}

// fakeConfig wires cfg to the SDK's fake server.
func fakeConfig(cfg Config, upload uploadFunc) Config {
	cfg.Endpoint = "https://ceskit-dce.westeurope-1.ingest.monitor.azure.com"
	cfg.RuleID = "dcr-00000000000000000000000000000001"
	cfg.Credential = &azfake.TokenCredential{}
	cfg.ClientOptions = &azlogs.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: fake.NewServerTransport(&fake.Server{Upload: upload}),
	}}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	}
	return cfg
}

func mustNew(t *testing.T, cfg Config) *Exporter {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// checkAccounted fails unless every exported record is sent, dropped or failed.
func checkAccounted(t *testing.T, e *Exporter, exported int) Stats {
	t.Helper()
	s := e.Stats()
	if s.Buffered != 0 || s.Sent+s.Dropped+s.Failed != int64(exported) {
		t.Errorf("stats %+v do not account for %d exported records", s, exported)
	}
	return s
}

// signalHandler is a slog.Handler that closes a channel on the first record with message msg.
// Tests use it to act only once the exporter is waiting between tries: the SDK's fake
// transport (azlogs v1.1.0) can panic when a request's context ends while it dispatches.
type signalHandler struct {
	msg  string
	once *sync.Once
	ch   chan struct{}
}

func newSignal(msg string) (*slog.Logger, <-chan struct{}) {
	h := signalHandler{msg: msg, once: new(sync.Once), ch: make(chan struct{})}
	return slog.New(h), h.ch
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

func errAs[T any](err error, target *T) bool { return errors.As(err, target) }
