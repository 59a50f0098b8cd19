package azmonitor

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"
)

// faultServer is a Logs Ingestion endpoint over TLS whose answers a test scripts: a response
// func returns the status to answer (0: 204 after recording the records, -1: hang until the
// client gives up).
type faultServer struct {
	*httptest.Server
	c        *collector
	requests atomic.Int64
	mu       sync.Mutex
	arrivals []time.Time
}

func newFaultServer(t *testing.T, respond func(n int64, w http.ResponseWriter) int) *faultServer {
	s := &faultServer{c: newCollector()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /dataCollectionRules/{rule}/streams/{stream}", func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		s.mu.Lock()
		s.arrivals = append(s.arrivals, time.Now())
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer fake_token" || r.URL.Query().Get("api-version") != "2023-01-01" {
			t.Errorf("request %d: Authorization %q, api-version %q", n, r.Header.Get("Authorization"), r.URL.Query().Get("api-version"))
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		switch status := respond(n, w); status {
		case 0:
			if err := s.c.add(r.PathValue("rule"), r.PathValue("stream"), body, r.Header.Get("Content-Encoding")); err != nil {
				t.Error(err)
			}
			w.WriteHeader(http.StatusNoContent)
		case -1:
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"error":{"code":"`+http.StatusText(status)+`","message":"injected"}}`)
		}
	})
	s.Server = httptest.NewUnstartedServer(mux)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut short by Close
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *faultServer) config(cfg Config) Config {
	cfg.Endpoint = s.URL
	cfg.RuleID = "dcr-00000000000000000000000000000002"
	cfg.Credential = &azfake.TokenCredential{}
	cfg.ClientOptions = &azlogs.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: s.Client()}}
	return cfg
}

func TestHTTPRetryAfterErrorsAndTimeouts(t *testing.T) {
	srv := newFaultServer(t, func(n int64, w http.ResponseWriter) int {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			return http.StatusTooManyRequests
		case 2:
			return http.StatusInternalServerError
		case 3:
			return -1 // slower than TryTimeout
		case 4:
			w.Header().Set("Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
			return http.StatusServiceUnavailable
		}
		return 0
	})
	e := mustNew(t, srv.config(Config{
		MaxBatchRecords: 25, TryTimeout: 300 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
	}))
	for i := range 100 {
		if err := e.ExportJSON(t.Context(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := srv.c.check(t); got != 100 {
		t.Errorf("%d records arrived, want 100", got)
	}
	s := checkAccounted(t, e, 100)
	if s.Sent != 100 || s.Batches != 4 || s.Retried != 4 || s.Failed != 0 {
		t.Errorf("stats %+v", s)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if d := srv.arrivals[1].Sub(srv.arrivals[0]); d < time.Second {
		t.Errorf("retried %v after Retry-After: 1", d)
	}
	if d := srv.arrivals[4].Sub(srv.arrivals[3]); d < time.Second {
		t.Errorf("retried %v after a Retry-After date about 2 s ahead", d)
	}
	for i, rule := range srv.c.rules {
		if rule != "dcr-00000000000000000000000000000002" || srv.c.streams[i] != StreamName || srv.c.encodings[i] != "gzip" {
			t.Errorf("upload %d: rule %q stream %q encoding %q", i, rule, srv.c.streams[i], srv.c.encodings[i])
		}
	}
}

// TestHTTPChaos runs producers against a server failing a third of its requests with 429, 500
// or a hang, with Run batching in the background: every record arrives exactly once, except
// what DropOldest drops, which is counted.
func TestHTTPChaos(t *testing.T) {
	for _, tc := range []struct {
		name   string
		buffer int
	}{{"roomy buffer", 100000}, {"overflowing buffer", 50}} {
		t.Run(tc.name, func(t *testing.T) {
			var hangs atomic.Int64
			srv := newFaultServer(t, func(n int64, w http.ResponseWriter) int {
				switch n % 6 {
				case 1:
					w.Header().Set("Retry-After-Ms", "5")
					return http.StatusTooManyRequests
				case 3:
					if hangs.Add(1) <= 2 {
						return -1
					}
					return http.StatusBadGateway
				}
				return 0
			})
			e := mustNew(t, srv.config(Config{
				MaxBatchBytes: 4096, FlushInterval: 5 * time.Millisecond, BufferRecords: tc.buffer,
				MaxRetries: 100, TryTimeout: 250 * time.Millisecond,
				MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			}))
			runErr := make(chan error, 1)
			go func() { runErr <- e.Run(t.Context()) }()
			const producers, each = 4, 500
			var wg sync.WaitGroup
			for p := range producers {
				wg.Go(func() {
					for i := range each {
						if err := e.ExportJSON(t.Context(), record(p*each+i)); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			if err := e.Close(t.Context()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := <-runErr; err != nil {
				t.Errorf("Run: %v", err)
			}
			got := srv.c.check(t)
			s := checkAccounted(t, e, producers*each)
			if s.Failed != 0 || int64(got) != s.Sent || s.Retried == 0 {
				t.Errorf("%d arrived, stats %+v", got, s)
			}
			if tc.buffer > producers*each && s.Dropped != 0 {
				t.Errorf("dropped %d with a roomy buffer", s.Dropped)
			}
			t.Logf("requests %d, stats %+v", srv.requests.Load(), s)
		})
	}
}

func TestHTTPPermanentError(t *testing.T) {
	srv := newFaultServer(t, func(n int64, w http.ResponseWriter) int { return http.StatusForbidden })
	e := mustNew(t, srv.config(Config{}))
	for i := range 3 {
		if err := e.ExportJSON(t.Context(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	err := e.Flush(t.Context())
	var re *azcore.ResponseError
	if !errAs(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("Flush: %v, want a 403 *azcore.ResponseError", err)
	}
	if s := checkAccounted(t, e, 3); s.Failed != 3 || s.Retried != 0 || srv.requests.Load() != 1 {
		t.Errorf("stats %+v after %d requests", s, srv.requests.Load())
	}
	if err := e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

}
