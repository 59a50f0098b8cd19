package azmonitor

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"
)

// Stats counts what an [Exporter] did with the records it was given. Sent, Dropped and Failed
// count records and only grow; once [Exporter.Close] returned, every record Export accepted or
// dropped is in exactly one of them.
type Stats struct {
	// Sent counts records the service acknowledged (HTTP 204).
	Sent int64
	// Batches counts successful uploads.
	Batches int64
	// Retried counts uploads that were sent again after a retryable failure.
	Retried int64
	// Dropped counts records discarded by the overflow policy.
	Dropped int64
	// Failed counts records given up on: a permanent error (a 4xx other than 408 and 429),
	// retries exhausted, or still unsent when Close's context ended.
	Failed int64
	// Buffered is the number of records waiting or being uploaded now.
	Buffered int64
}

// Exporter uploads JSON records to a Log Analytics table through a DCR stream of the Logs
// Ingestion API. [Exporter.Export] buffers a record; [Exporter.Run] uploads the buffer in
// batches of up to MaxBatchBytes (or MaxBatchRecords) as soon as a batch is full, and whatever
// is buffered every FlushInterval; [Exporter.Flush] and [Exporter.Close] upload on demand.
// Failed uploads are retried with backoff, honouring Retry-After. Uploads never overlap.
//
// Delivery is at least once: a try that times out, or whose context ends, may still have
// reached the service, and its batch is sent again. Close never cuts a try short.
//
// An Exporter is safe for concurrent use. It starts no goroutines of its own.
type Exporter struct {
	cfg    Config
	client *azlogs.Client
	log    *slog.Logger
	upOpts *azlogs.UploadOptions

	sendSem  chan struct{} // holds a token while a goroutine uploads
	wake     chan struct{} // a full batch is waiting
	closedCh chan struct{} // closed by Close
	running  atomic.Bool

	mu       sync.Mutex
	queue    [][]byte // queue[head:] are waiting, oldest first
	head     int
	qBytes   int // sum of len of the waiting records
	inflight int
	space    chan struct{} // closed and replaced when records leave the queue
	closed   bool
	discard  bool // Close gave up: batches coming back count as failed

	sent, batches, retried, dropped, failed atomic.Int64
}

// New returns an exporter for cfg. It validates cfg (see [Config.Validate]) and creates the
// SDK client; it makes no network calls.
func New(cfg Config) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var opts azlogs.ClientOptions
	if cfg.ClientOptions != nil {
		opts = *cfg.ClientOptions
	}
	opts.Retry.MaxRetries = -1 // we retry, and count, ourselves
	client, err := azlogs.NewClient(cfg.Endpoint, cfg.Credential, &opts)
	if err != nil {
		return nil, fmt.Errorf("create logs ingestion client for %s: %w", cfg.Endpoint, err)
	}
	e := &Exporter{
		cfg:      cfg,
		client:   client,
		log:      cfg.Logger,
		sendSem:  make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		closedCh: make(chan struct{}),
		space:    make(chan struct{}),
	}
	if !cfg.DisableGzip {
		enc := "gzip"
		e.upOpts = &azlogs.UploadOptions{ContentEncoding: &enc}
	}
	return e, nil
}

// Export marshals record to JSON and buffers it. The record must marshal to a JSON object
// whose fields match the stream's columns (for the flow stream: [FlowRecord]). When the buffer
// is full, [Config].Overflow decides; ctx bounds the wait under [Block].
func (e *Exporter) Export(ctx context.Context, record any) error {
	b, err := json.Marshal(record)
	if err != nil {
		return fmt.Errorf("marshal record: %w", err)
	}
	return e.add(ctx, b)
}

// ExportJSON buffers a copy of record, which must be one JSON object. It is otherwise like
// [Exporter.Export].
func (e *Exporter) ExportJSON(ctx context.Context, record []byte) error {
	if !json.Valid(record) {
		return fmt.Errorf("export record: %w", ErrInvalidRecord)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, record); err != nil {
		return fmt.Errorf("export record: %w", ErrInvalidRecord)
	}
	return e.add(ctx, buf.Bytes())
}

func (e *Exporter) add(ctx context.Context, b []byte) error {
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("export record: %w", ErrInvalidRecord)
	}
	if len(b)+2 > e.cfg.MaxBatchBytes {
		return fmt.Errorf("export record of %d bytes (MaxBatchBytes %d): %w", len(b), e.cfg.MaxBatchBytes, ErrRecordTooLarge)
	}
	e.mu.Lock()
	for {
		if e.closed {
			e.mu.Unlock()
			return ErrClosed
		}
		if e.lenLocked() < e.cfg.BufferRecords {
			break
		}
		switch e.cfg.Overflow {
		case DropNewest:
			e.dropped.Add(1)
			e.mu.Unlock()
			return ErrBufferFull
		case Block:
			space := e.space
			e.mu.Unlock()
			select {
			case <-space:
			case <-ctx.Done():
				return fmt.Errorf("export record: wait for buffer space: %w", ctx.Err())
			case <-e.closedCh:
				return ErrClosed
			}
			e.mu.Lock()
		default: // DropOldest
			for e.lenLocked() >= e.cfg.BufferRecords {
				e.popLocked()
				e.dropped.Add(1)
			}
		}
	}
	e.queue = append(e.queue, b)
	e.qBytes += len(b)
	ready := e.batchReadyLocked()
	e.mu.Unlock()
	if ready {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Run uploads full batches as they form and everything buffered every FlushInterval, until
// ctx ends or the exporter is closed; then it returns nil. A batch being retried when Run
// stops goes back to the front of the buffer for [Exporter.Close]. Only one Run may be active
// at a time; a second returns [ErrRunning].
func (e *Exporter) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer e.running.Store(false)
	if e.isClosed() {
		return ErrClosed
	}
	tick := e.cfg.Clock.NewTicker(e.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.closedCh:
			return nil
		case <-e.wake:
			e.drain(ctx, true)
		case <-tick.C():
			e.drain(ctx, false)
		}
	}
}

// drain uploads full batches (fullOnly) or everything buffered, until the buffer has no more
// or ctx ends. Failures are counted and logged.
func (e *Exporter) drain(ctx context.Context, fullOnly bool) {
	select {
	case e.sendSem <- struct{}{}:
	case <-ctx.Done():
		return
	case <-e.closedCh:
		return
	}
	defer func() { <-e.sendSem }()
	for {
		e.mu.Lock()
		if e.closed || e.lenLocked() == 0 || (fullOnly && !e.batchReadyLocked()) {
			e.mu.Unlock()
			return
		}
		batch := e.takeLocked()
		e.mu.Unlock()
		if done, _ := e.send(ctx, batch, e.closedCh); !done {
			e.requeue(batch)
			return
		}
	}
}

// Flush uploads the records buffered when it is called and returns when they are sent or
// given up on. It returns an error wrapping the last upload error if any batch failed, and an
// *[UnsentError] (records stay buffered) if ctx ends first.
func (e *Exporter) Flush(ctx context.Context) error {
	if e.isClosed() {
		return ErrClosed
	}
	select {
	case e.sendSem <- struct{}{}:
	case <-ctx.Done():
		return &UnsentError{Records: int(e.Stats().Buffered), Err: ctx.Err()}
	}
	defer func() { <-e.sendSem }()
	e.mu.Lock()
	n := e.lenLocked()
	e.mu.Unlock()
	var lastErr error
	for taken := 0; taken < n; {
		e.mu.Lock()
		if e.lenLocked() == 0 {
			e.mu.Unlock()
			break
		}
		batch := e.takeLocked()
		e.mu.Unlock()
		taken += len(batch)
		done, err := e.send(ctx, batch, nil)
		if !done {
			e.requeue(batch)
			return &UnsentError{Records: int(e.Stats().Buffered), Err: err}
		}
		if err != nil {
			lastErr = err
		}
	}
	if lastErr != nil {
		return fmt.Errorf("flush: %w", lastErr)
	}
	return nil
}

// Close stops accepting records, stops [Exporter.Run] (letting a try in progress finish, and
// taking over a batch waiting between tries), and uploads everything still buffered, bounded
// by ctx. Records still unsent when ctx ends are counted as failed and reported by an
// *[UnsentError]. A failed batch makes Close return an error wrapping the upload error. Close
// is idempotent: later calls return nil.
func (e *Exporter) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.closedCh)
	e.mu.Unlock()

	select {
	case e.sendSem <- struct{}{}:
	case <-ctx.Done():
		return &UnsentError{Records: e.abandon(), Err: ctx.Err()}
	}
	defer func() { <-e.sendSem }()
	var lastErr error
	for {
		e.mu.Lock()
		if e.lenLocked() == 0 {
			e.mu.Unlock()
			break
		}
		batch := e.takeLocked()
		e.mu.Unlock()
		done, err := e.send(ctx, batch, nil)
		if !done {
			e.requeue(batch)
			return &UnsentError{Records: e.abandon(), Err: err}
		}
		if err != nil {
			lastErr = err
		}
	}
	if lastErr != nil {
		return fmt.Errorf("close: %w", lastErr)
	}
	return nil
}

// abandon counts every waiting record as failed and makes batches still in flight count as
// failed when they come back. It returns the number counted now.
func (e *Exporter) abandon() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.discard = true
	n := e.lenLocked()
	clear(e.queue)
	e.queue, e.head, e.qBytes = nil, 0, 0
	e.failed.Add(int64(n))
	if n > 0 {
		e.log.Error("records not uploaded before close", "records", n)
	}
	return n
}

// Stats returns the exporter's counters.
func (e *Exporter) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{
		Sent:     e.sent.Load(),
		Batches:  e.batches.Load(),
		Retried:  e.retried.Load(),
		Dropped:  e.dropped.Load(),
		Failed:   e.failed.Load(),
		Buffered: int64(e.lenLocked() + e.inflight),
	}
}

func (e *Exporter) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

func (e *Exporter) lenLocked() int { return len(e.queue) - e.head }

// batchReadyLocked reports whether the waiting records fill at least one batch.
func (e *Exporter) batchReadyLocked() bool {
	n := e.lenLocked()
	if e.cfg.MaxBatchRecords > 0 && n >= e.cfg.MaxBatchRecords {
		return true
	}
	return n > 0 && e.qBytes+n+1 >= e.cfg.MaxBatchBytes // brackets and commas
}

func (e *Exporter) popLocked() {
	e.qBytes -= len(e.queue[e.head])
	e.queue[e.head] = nil
	e.head++
	e.compactLocked()
}

func (e *Exporter) compactLocked() {
	if e.head == len(e.queue) {
		e.queue, e.head = e.queue[:0], 0
	} else if e.head > 1024 && e.head > len(e.queue)/2 {
		n := copy(e.queue, e.queue[e.head:])
		clear(e.queue[n:])
		e.queue, e.head = e.queue[:n], 0
	}
}

// takeLocked moves the oldest records that fit one batch from the queue to the flight.
func (e *Exporter) takeLocked() [][]byte {
	size := 2
	var batch [][]byte
	for e.head < len(e.queue) {
		if e.cfg.MaxBatchRecords > 0 && len(batch) == e.cfg.MaxBatchRecords {
			break
		}
		r := e.queue[e.head]
		add := len(r)
		if len(batch) > 0 {
			add++
		}
		if size+add > e.cfg.MaxBatchBytes {
			break
		}
		size += add
		batch = append(batch, r)
		e.queue[e.head] = nil
		e.head++
		e.qBytes -= len(r)
	}
	e.compactLocked()
	e.inflight += len(batch)
	close(e.space)
	e.space = make(chan struct{})
	return batch
}

// requeue puts a batch whose upload was interrupted back at the front of the queue.
func (e *Exporter) requeue(batch [][]byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inflight -= len(batch)
	if e.discard {
		e.failed.Add(int64(len(batch)))
		e.log.Error("records not uploaded before close", "records", len(batch))
		return
	}
	q := make([][]byte, 0, len(batch)+e.lenLocked())
	q = append(q, batch...)
	q = append(q, e.queue[e.head:]...)
	e.queue, e.head = q, 0
	for _, r := range batch {
		e.qBytes += len(r)
	}
}

// settle ends the flight of n records, counting them in outcome, so that [Exporter.Stats]
// never sees them in two places or none.
func (e *Exporter) settle(n int, outcome *atomic.Int64) {
	e.mu.Lock()
	e.inflight -= n
	outcome.Add(int64(n))
	e.mu.Unlock()
}

// send uploads one batch, retrying as the config says. done reports whether the batch is
// settled (sent, or counted as failed with err describing why); when ctx ends first, or stop
// is closed during a wait between tries, done is false and the caller owns the batch again.
// stop never interrupts a try: a try cut short may have reached the service, and sending its
// batch again would duplicate records.
func (e *Exporter) send(ctx context.Context, batch [][]byte, stop <-chan struct{}) (done bool, err error) {
	n := len(batch)
	body, err := e.encode(batch)
	if err != nil { // gzip into memory does not fail; keep the records safe anyway
		e.settle(n, &e.failed)
		return true, err
	}
	noRetry := policy.RetryOptions{MaxRetries: -1}
	for attempt := 0; ; attempt++ {
		tryCtx, cancel := context.WithTimeout(ctx, e.cfg.TryTimeout)
		_, err = e.client.Upload(policy.WithRetryOptions(tryCtx, noRetry), e.cfg.RuleID, e.cfg.Stream, body, e.upOpts)
		cancel()
		if err == nil {
			e.batches.Add(1)
			e.settle(n, &e.sent)
			return true, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		retry, wait := classify(err, e.cfg.Clock.Now())
		if !retry || attempt >= e.cfg.MaxRetries {
			e.settle(n, &e.failed)
			e.log.Error("upload failed", "records", n, "attempts", attempt+1, "retryable", retry, "error", err)
			return true, fmt.Errorf("upload %d records to stream %s: %w", n, e.cfg.Stream, err)
		}
		delay := backoff(e.cfg.MinBackoff, e.cfg.MaxBackoff, attempt)
		if wait > 0 {
			delay = min(wait, MaxRetryAfter)
		}
		e.log.Warn("upload failed, retrying", "records", n, "attempt", attempt+1, "delay", delay, "error", err)
		t := e.cfg.Clock.NewTimer(delay)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-stop:
			t.Stop()
			return false, ErrClosed
		}
		e.retried.Add(1)
	}
}

// encode writes batch as one JSON array, gzipped unless DisableGzip.
func (e *Exporter) encode(batch [][]byte) ([]byte, error) {
	var raw bytes.Buffer
	raw.WriteByte('[')
	for i, r := range batch {
		if i > 0 {
			raw.WriteByte(',')
		}
		raw.Write(r)
	}
	raw.WriteByte(']')
	if e.cfg.DisableGzip {
		return raw.Bytes(), nil
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	if _, err := w.Write(raw.Bytes()); err != nil {
		return nil, fmt.Errorf("gzip batch: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("gzip batch: %w", err)
	}
	return gz.Bytes(), nil
}
