package azmonitor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"
	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestCloseUploadsBatchesGzipped(t *testing.T) {
	c := newCollector()
	e := mustNew(t, fakeConfig(Config{MaxBatchRecords: 10}, c.ok(t)))
	for i := range 95 {
		if err := e.ExportJSON(t.Context(), record(i)); err != nil {
			t.Fatalf("ExportJSON: %v", err)
		}
	}
	if err := e.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := c.check(t); got != 95 {
		t.Errorf("%d records arrived, want 95", got)
	}
	s := checkAccounted(t, e, 95)
	if diff := cmp.Diff(Stats{Sent: 95, Batches: 10}, s); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	for i, enc := range c.encodings {
		if enc != "gzip" || c.rules[i] != "dcr-00000000000000000000000000000001" || c.streams[i] != StreamName {
			t.Errorf("upload %d: encoding %q rule %q stream %q", i, enc, c.rules[i], c.streams[i])
		}
	}
}

func TestBatchesRespectMaxBatchBytes(t *testing.T) {
	c := newCollector()
	const limit = 400
	e := mustNew(t, fakeConfig(Config{MaxBatchBytes: limit, DisableGzip: true}, c.ok(t)))
	for i := range 50 {
		if err := e.ExportJSON(t.Context(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := c.check(t); got != 50 {
		t.Errorf("%d records arrived, want 50", got)
	}
	for i, n := range c.sizes {
		if n > limit {
			t.Errorf("upload %d has %d bytes, limit %d", i, n, limit)
		}
		if c.encodings[i] != "" {
			t.Errorf("upload %d has Content-Encoding %q with DisableGzip", i, c.encodings[i])
		}
	}
	if len(c.sizes) < 50*len(record(10))/limit {
		t.Errorf("only %d uploads", len(c.sizes))
	}
	if err := e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkAccounted(t, e, 50)
}

// scripted returns an upload fake answering the given statuses in turn (0: 204), then 204.
func scripted(t *testing.T, c *collector, statuses ...int) uploadFunc {
	var mu sync.Mutex
	ok := c.ok(t)
	return func(ctx context.Context, rule, stream string, logs []byte, o *azlogs.UploadOptions) (resp azfake.Responder[azlogs.UploadResponse], errResp azfake.ErrorResponder) {
		mu.Lock()
		status := 0
		if len(statuses) > 0 {
			status, statuses = statuses[0], statuses[1:]
		}
		mu.Unlock()
		if status != 0 {
			errResp.SetResponseError(status, http.StatusText(status))
			return resp, errResp
		}
		return ok(ctx, rule, stream, logs, o)
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name       string
		statuses   []int
		maxRetries int
		want       Stats
		wantErr    bool
	}{
		{"429 then 500 then ok", []int{429, 500, 503}, 0, Stats{Sent: 20, Batches: 2, Retried: 3}, false},
		{"408 retried", []int{408}, 0, Stats{Sent: 20, Batches: 2, Retried: 1}, false},
		{"403 permanent", []int{403}, 0, Stats{Sent: 10, Batches: 1, Failed: 10}, true},
		{"400 permanent", []int{400}, 0, Stats{Sent: 10, Batches: 1, Failed: 10}, true},
		{"retries exhausted", []int{500, 500, 500}, 2, Stats{Sent: 10, Batches: 1, Retried: 2, Failed: 10}, true},
		{"no retries", []int{429}, -1, Stats{Sent: 10, Batches: 1, Failed: 10}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector()
			e := mustNew(t, fakeConfig(Config{MaxBatchRecords: 10, MaxRetries: tc.maxRetries}, scripted(t, c, tc.statuses...)))
			for i := range 20 {
				if err := e.ExportJSON(t.Context(), record(i)); err != nil {
					t.Fatal(err)
				}
			}
			err := e.Close(t.Context())
			if (err != nil) != tc.wantErr {
				t.Errorf("Close: %v, want error %t", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, e.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			if got := c.check(t); int64(got) != tc.want.Sent {
				t.Errorf("%d records arrived, want %d", got, tc.want.Sent)
			}
			checkAccounted(t, e, 20)
		})
	}
}

func TestOverflow(t *testing.T) {
	for _, tc := range []struct {
		policy     OverflowPolicy
		wantErrs   int // Export calls returning ErrBufferFull
		wantFirst  int // first record that must arrive
		wantLast   int
		wantDrops  int64
		exportWant error
	}{
		{DropOldest, 0, 3, 7, 3, nil},
		{DropNewest, 3, 0, 4, 3, ErrBufferFull},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			c := newCollector()
			e := mustNew(t, fakeConfig(Config{BufferRecords: 5, Overflow: tc.policy}, c.ok(t)))
			errs := 0
			for i := range 8 {
				err := e.ExportJSON(t.Context(), record(i))
				if err != nil {
					if !errors.Is(err, tc.exportWant) || tc.exportWant == nil {
						t.Fatalf("ExportJSON(%d): %v", i, err)
					}
					errs++
				}
			}
			if errs != tc.wantErrs {
				t.Errorf("%d exports failed, want %d", errs, tc.wantErrs)
			}
			if s := e.Stats(); s.Buffered != 5 || s.Dropped != tc.wantDrops {
				t.Errorf("before close: %+v", s)
			}
			if err := e.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := c.check(t); got != 5 {
				t.Errorf("%d records arrived, want 5", got)
			}
			for i := tc.wantFirst; i <= tc.wantLast; i++ {
				if !c.has(fmt.Sprintf("r%d", i)) {
					t.Errorf("record r%d missing", i)
				}
			}
			checkAccounted(t, e, 8)
		})
	}

	t.Run("Block", func(t *testing.T) {
		c := newCollector()
		e := mustNew(t, fakeConfig(Config{BufferRecords: 5, Overflow: Block}, c.ok(t)))
		for i := range 5 {
			if err := e.ExportJSON(t.Context(), record(i)); err != nil {
				t.Fatal(err)
			}
		}
		// A full buffer refuses a record once the context ends, without counting it.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		if err := e.ExportJSON(ctx, record(99)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ExportJSON on a full buffer: %v, want deadline exceeded", err)
		}
		// A blocked Export proceeds once a flush makes room.
		done := make(chan error, 1)
		go func() { done <- e.ExportJSON(t.Context(), record(5)) }()
		if err := e.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("blocked ExportJSON: %v", err)
		}
		// Close releases a blocked Export with ErrClosed.
		for i := 6; i < 10; i++ {
			if err := e.ExportJSON(t.Context(), record(i)); err != nil {
				t.Fatal(err)
			}
		}
		go func() { done <- e.ExportJSON(t.Context(), record(100)) }()
		if err := e.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked ExportJSON during Close: %v", err)
		}
		got := c.check(t)
		if c.has("r100") {
			got-- // it found room before Close
		}
		if got != 10 || c.has("r99") {
			t.Errorf("%d records arrived, want r0…r9", got)
		}
		s := e.Stats()
		if s.Dropped != 0 || s.Failed != 0 || s.Buffered != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestExportRejects(t *testing.T) {
	e := mustNew(t, fakeConfig(Config{MaxBatchBytes: 64}, newCollector().ok(t)))
	for _, tc := range []struct {
		rec  string
		want error
	}{
		{`not json`, ErrInvalidRecord},
		{`[1,2]`, ErrInvalidRecord},
		{`"s"`, ErrInvalidRecord},
		{`{"Message":"` + strings.Repeat("x", 64) + `"}`, ErrRecordTooLarge},
	} {
		if err := e.ExportJSON(t.Context(), []byte(tc.rec)); !errors.Is(err, tc.want) {
			t.Errorf("ExportJSON(%.20s): %v, want %v", tc.rec, err, tc.want)
		}
	}
	if err := e.Export(t.Context(), []int{1}); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("Export(slice): %v", err)
	}
	if err := e.Export(t.Context(), make(chan int)); err == nil {
		t.Error("Export(chan) succeeded")
	}
	if s := e.Stats(); s != (Stats{}) {
		t.Errorf("rejected records changed stats: %+v", s)
	}
	if err := e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.Export(t.Context(), map[string]string{"a": "b"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Export after Close: %v", err)
	}
	if err := e.Flush(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close: %v", err)
	}
	if err := e.Run(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
	if err := e.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRunBatchesBySizeAndTime(t *testing.T) {
	c := newCollector()
	clk := clocktesting.NewFakeClock(time.Unix(1e9, 0))
	e := mustNew(t, fakeConfig(Config{MaxBatchRecords: 4, FlushInterval: time.Minute, Clock: clk}, c.ok(t)))
	ctx, cancel := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- e.Run(ctx) }()
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	if err := e.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v", err)
	}

	// A full batch goes out without waiting for the interval.
	for i := range 5 {
		if err := e.ExportJSON(t.Context(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "full batch", func() bool { return e.Stats().Sent == 4 })
	if s := e.Stats(); s.Sent != 4 || s.Buffered != 1 {
		t.Fatalf("after full batch: %+v", s)
	}
	// The rest waits for the interval.
	clk.Step(time.Minute)
	waitFor(t, "interval flush", func() bool { return e.Stats().Sent == 5 })
	if n := c.uploads(); n != 2 {
		t.Errorf("%d uploads, want 2", n)
	}

	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := c.check(t); got != 5 {
		t.Errorf("%d records arrived, want 5", got)
	}
	checkAccounted(t, e, 5)
}

// TestCloseTakesOverFromRun: Close interrupts Run's backoff and uploads the batch itself.
func TestCloseTakesOverFromRun(t *testing.T) {
	c := newCollector()
	var healthy atomic.Bool
	ok := c.ok(t)
	upload := func(ctx context.Context, rule, stream string, logs []byte, o *azlogs.UploadOptions) (resp azfake.Responder[azlogs.UploadResponse], errResp azfake.ErrorResponder) {
		if !healthy.Load() {
			errResp.SetResponseError(http.StatusServiceUnavailable, "ServiceUnavailable")
			return resp, errResp
		}
		return ok(ctx, rule, stream, logs, o)
	}
	logger, retrying := newSignal("upload failed, retrying")
	e := mustNew(t, fakeConfig(Config{MaxBatchRecords: 3, MinBackoff: time.Hour, MaxBackoff: time.Hour, Logger: logger}, upload))
	runErr := make(chan error, 1)
	go func() { runErr <- e.Run(t.Context()) }()
	for i := range 7 {
		if err := e.ExportJSON(t.Context(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	<-retrying // Run holds a batch and waits an hour before its next try
	healthy.Store(true)
	if err := e.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
	if got := c.check(t); got != 7 {
		t.Errorf("%d records arrived, want 7", got)
	}
	checkAccounted(t, e, 7)
}

func TestCloseDeadlineCountsFailed(t *testing.T) {
	c := newCollector()
	logger, retrying := newSignal("upload failed, retrying")
	e := mustNew(t, fakeConfig(Config{MaxBatchRecords: 2, MinBackoff: time.Hour, MaxBackoff: time.Hour, Logger: logger},
		scripted(t, c, repeat(503, 100)...)))
	for i := range 5 {
		if err := e.ExportJSON(t.Context(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-retrying; cancel() }()
	err := e.Close(ctx)
	var unsent *UnsentError
	if !errors.As(err, &unsent) || !errors.Is(err, context.Canceled) || unsent.Records != 5 {
		t.Fatalf("Close: %v, want *UnsentError for 5 records", err)
	}
	s := checkAccounted(t, e, 5)
	if s.Failed != 5 || s.Sent != 0 {
		t.Errorf("stats %+v", s)
	}
}

func repeat(v, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
