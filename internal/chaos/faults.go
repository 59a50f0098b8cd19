package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// Faults says which faults an [Injector] injects, and how often. The zero value injects none.
// Rates are fractions of the eligible requests (see Only), between 0 and 1.
type Faults struct {
	// ErrorRate is the fraction of requests answered by the injector itself with an API error,
	// without reaching the server: 409 Conflict, 429 TooManyRequests or 500 InternalError, drawn
	// by the weights below. The bodies are the metav1.Status the real API server sends, so
	// client-go turns them into the same errors (apierrors.IsConflict, …).
	ErrorRate float64
	// ConflictWeight, TooManyRequestsWeight and InternalErrorWeight split ErrorRate among the
	// three codes. All zero means equal weights. A 409 is only ever sent for an update, patch or
	// delete (a real server never answers a read, a create or a watch with Conflict): for other
	// verbs the draw falls on 429 and 500 by their weights.
	ConflictWeight, TooManyRequestsWeight, InternalErrorWeight float64
	// RetryAfter is the Retry-After header of 429 responses, in whole seconds as the API server
	// sends it; client-go waits that long and retries by itself, up to 10 times. Default 1s
	// (what the API server's priority and fairness sends).
	RetryAfter time.Duration

	// Latency is added to every eligible request before it is sent (or answered with a fault),
	// plus a uniform random extra in [0, Jitter).
	Latency, Jitter time.Duration

	// TimeoutRate is the fraction of requests that time out: the call hangs for Timeout, then
	// fails with a network timeout error, as a client-side deadline does. Half of them (by the
	// draw) are sent to the server first and only the response is lost, so a write may have
	// been applied although its caller saw it fail.
	TimeoutRate float64
	// Timeout is how long a timed-out request hangs. Default 500ms.
	Timeout time.Duration

	// WatchDisconnectRate is the fraction of watch requests (?watch=true) whose response stream
	// is cut after a random time in [0, WatchMaxDuration): the client reads an unexpected EOF,
	// as when a connection or the API server drops. Default WatchMaxDuration 5s.
	WatchDisconnectRate float64
	WatchMaxDuration    time.Duration

	// Seed seeds the injector's random source. The sequence of decisions is a function of the
	// seed; which request gets which decision also depends on the order in which concurrent
	// requests arrive. Read by [New] only.
	Seed int64

	// Only, when set, limits faults to the requests it returns true for (say, writes only, or
	// one resource; see [Writes] and [Resources]). Other requests pass untouched. It must be
	// safe for concurrent use.
	Only func(*http.Request) bool
}

func (f Faults) withDefaults() Faults {
	if f.RetryAfter <= 0 {
		f.RetryAfter = time.Second
	}
	if f.Timeout <= 0 {
		f.Timeout = 500 * time.Millisecond
	}
	if f.WatchMaxDuration <= 0 {
		f.WatchMaxDuration = 5 * time.Second
	}
	if f.ConflictWeight <= 0 && f.TooManyRequestsWeight <= 0 && f.InternalErrorWeight <= 0 {
		f.ConflictWeight, f.TooManyRequestsWeight, f.InternalErrorWeight = 1, 1, 1
	}
	return f
}

// Writes is a [Faults].Only filter that selects mutating requests (POST, PUT, PATCH, DELETE).
func Writes(r *http.Request) bool { return isWrite(r.Method) }

// Resources returns a [Faults].Only filter that selects requests for the named resources (plural,
// lower case, as in the URL: "ciliumendpointslices", "leases").
func Resources(names ...string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		_, res, _ := target(r.URL.Path)
		for _, n := range names {
			if res == n {
				return true
			}
		}
		return false
	}
}

// Stats counts what an [Injector] saw and did.
type Stats struct {
	// Requests is every request that went through the injector; Eligible those Only selected.
	Requests, Eligible int64
	// Conflicts, TooManyRequests and InternalErrors are the injected 409, 429 and 500 answers.
	Conflicts, TooManyRequests, InternalErrors int64
	// Timeouts are the injected timeouts; TimeoutsSent those among them that reached the server
	// (response lost).
	Timeouts, TimeoutsSent int64
	// Delayed counts requests that were given latency.
	Delayed int64
	// WatchDisconnects counts watch streams cut (by the rate, or by SetDown).
	WatchDisconnects int64
	// Refused counts requests refused while the injector was down.
	Refused int64
}

// Errors is the number of injected API errors (409, 429 and 500).
func (s Stats) Errors() int64 { return s.Conflicts + s.TooManyRequests + s.InternalErrors }

// Add returns the field-wise sum of s and o.
func (s Stats) Add(o Stats) Stats {
	return Stats{
		Requests: s.Requests + o.Requests, Eligible: s.Eligible + o.Eligible,
		Conflicts: s.Conflicts + o.Conflicts, TooManyRequests: s.TooManyRequests + o.TooManyRequests,
		InternalErrors: s.InternalErrors + o.InternalErrors,
		Timeouts:       s.Timeouts + o.Timeouts, TimeoutsSent: s.TimeoutsSent + o.TimeoutsSent,
		Delayed: s.Delayed + o.Delayed, WatchDisconnects: s.WatchDisconnects + o.WatchDisconnects,
		Refused: s.Refused + o.Refused,
	}
}

func (s Stats) String() string {
	return fmt.Sprintf("%d requests (%d eligible): %d×409 %d×429 %d×500, %d timeouts (%d sent), %d delayed, %d watch cuts, %d refused",
		s.Requests, s.Eligible, s.Conflicts, s.TooManyRequests, s.InternalErrors, s.Timeouts, s.TimeoutsSent,
		s.Delayed, s.WatchDisconnects, s.Refused)
}

// Injector injects [Faults] into the HTTP requests of the clients built from the rest.Configs it
// wraps. It is safe for concurrent use; one Injector may wrap any number of configs, and its
// faults can be changed while requests flow ([Injector.SetFaults]).
type Injector struct {
	mu      sync.Mutex
	f       Faults
	rng     *rand.Rand
	down    bool
	watches map[*cutBody]struct{}

	requests, eligible              atomic.Int64
	conflicts, tooMany, internal    atomic.Int64
	timeouts, timeoutsSent, delayed atomic.Int64
	watchCuts, refused              atomic.Int64
}

// New returns an Injector that injects f.
func New(f Faults) *Injector {
	seed := uint64(f.Seed)
	return &Injector{
		f:       f.withDefaults(),
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		watches: map[*cutBody]struct{}{},
	}
}

// SetFaults replaces the faults from the next request on (f.Seed is ignored: the random
// sequence goes on). Streams already given a cut time are still cut then, unless f has no
// watch disconnects: SetFaults(Faults{}) stops every fault, for a test's convergence phase.
func (in *Injector) SetFaults(f Faults) {
	in.mu.Lock()
	in.f = f.withDefaults()
	in.mu.Unlock()
}

// Faults returns the faults in force, defaults filled in.
func (in *Injector) Faults() Faults {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.f
}

// SetDown cuts the clients off the API server, as a network partition or the death of their
// process does: while down, every request fails at once with "connection refused" and every open
// watch stream is cut. A test that kills a component sets its injector down first, so the
// component cannot say goodbye (mark a lease stopped, finish a write) on its way out.
func (in *Injector) SetDown(down bool) {
	in.mu.Lock()
	in.down = down
	var cut []*cutBody
	if down {
		for b := range in.watches {
			cut = append(cut, b)
		}
	}
	in.mu.Unlock()
	for _, b := range cut {
		b.cut()
	}
}

// Stats returns the counters so far.
func (in *Injector) Stats() Stats {
	return Stats{
		Requests: in.requests.Load(), Eligible: in.eligible.Load(),
		Conflicts: in.conflicts.Load(), TooManyRequests: in.tooMany.Load(), InternalErrors: in.internal.Load(),
		Timeouts: in.timeouts.Load(), TimeoutsSent: in.timeoutsSent.Load(), Delayed: in.delayed.Load(),
		WatchDisconnects: in.watchCuts.Load(), Refused: in.refused.Load(),
	}
}

// WrapConfig returns a copy of cfg whose transport goes through the injector (after any
// WrapTransport cfg already had). Clients built from it see the faults; cfg is unchanged.
func (in *Injector) WrapConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	prev := c.WrapTransport
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if prev != nil {
			rt = prev(rt)
		}
		return in.RoundTripper(rt)
	}
	return c
}

// RoundTripper returns next with the injector in front of it.
func (in *Injector) RoundTripper(next http.RoundTripper) http.RoundTripper {
	return &transport{in: in, next: next}
}

type faultKind int

const (
	faultNone faultKind = iota
	faultError
	faultTimeout
)

// decision is what happens to one request, drawn under the injector's lock.
type decision struct {
	refuse     bool
	delay      time.Duration
	kind       faultKind
	code       int
	send       bool // timeout: send the request, lose the response
	timeout    time.Duration
	retryAfter time.Duration
	cutAfter   time.Duration // watch: cut the stream after this (0: never)
}

// decide draws the fate of req. Every eligible request takes the same number of draws, so the
// sequence of decisions depends on the seed alone.
func (in *Injector) decide(req *http.Request) decision {
	in.requests.Add(1)
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.down {
		in.refused.Add(1)
		return decision{refuse: true}
	}
	f := in.f
	if f.Only != nil && !f.Only(req) {
		return decision{}
	}
	in.eligible.Add(1)
	jitter, fate, which, send, cut, cutAt := in.rng.Float64(), in.rng.Float64(), in.rng.Float64(), in.rng.Float64(), in.rng.Float64(), in.rng.Float64()
	d := decision{delay: f.Latency + time.Duration(jitter*float64(f.Jitter)), timeout: f.Timeout, retryAfter: f.RetryAfter}
	switch {
	case fate < f.ErrorRate:
		d.kind = faultError
		wc := f.ConflictWeight
		if !isWrite(req.Method) || req.Method == http.MethodPost {
			wc = 0
		}
		total := wc + f.TooManyRequestsWeight + f.InternalErrorWeight
		switch x := which * total; {
		case total == 0:
			d.kind = faultNone
		case x < wc:
			d.code = http.StatusConflict
		case x < wc+f.TooManyRequestsWeight:
			d.code = http.StatusTooManyRequests
		default:
			d.code = http.StatusInternalServerError
		}
	case fate < f.ErrorRate+f.TimeoutRate:
		d.kind = faultTimeout
		d.send = send < 0.5
	}
	if isWatch(req) && cut < f.WatchDisconnectRate {
		d.cutAfter = max(time.Duration(cutAt*float64(f.WatchMaxDuration)), time.Millisecond)
	}
	return d
}

type transport struct {
	in   *Injector
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	in := t.in
	d := in.decide(req)
	if d.refuse {
		closeBody(req)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	if d.delay > 0 {
		in.delayed.Add(1)
		if err := sleep(req.Context(), d.delay); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	switch d.kind {
	case faultError:
		closeBody(req)
		switch d.code {
		case http.StatusConflict:
			in.conflicts.Add(1)
		case http.StatusTooManyRequests:
			in.tooMany.Add(1)
		default:
			in.internal.Add(1)
		}
		return errorResponse(req, d.code, d.retryAfter), nil
	case faultTimeout:
		in.timeouts.Add(1)
		if d.send {
			in.timeoutsSent.Add(1)
			// The server has acted on the request once its headers are back; the response
			// is what gets lost.
			if resp, err := t.next.RoundTrip(req); err == nil {
				_ = resp.Body.Close()
			}
		} else {
			closeBody(req)
		}
		if err := sleep(req.Context(), d.timeout); err != nil {
			return nil, err
		}
		return nil, timeoutError{}
	}
	if !isWatch(req) {
		return t.next.RoundTrip(req)
	}
	// A watch stream is cut by cancelling its request: that aborts a Read blocked on the
	// connection, over HTTP/1.1 as over HTTP/2, where closing the body would wait for it.
	ctx, cancel := context.WithCancel(req.Context())
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		return resp, err
	}
	resp.Body = in.track(resp.Body, cancel, d.cutAfter)
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// timeoutError is what a client-side deadline looks like to client-go: a net.Error that timed
// out.
type timeoutError struct{}

func (timeoutError) Error() string   { return "chaos: i/o timeout (injected)" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var _ net.Error = timeoutError{}

// cutBody is a watch response body the injector can cut: from then on reads fail with
// io.ErrUnexpectedEOF, as on a dropped connection.
type cutBody struct {
	in     *Injector
	body   io.ReadCloser
	cancel context.CancelFunc
	timer  *time.Timer
	mu     sync.Mutex
	done   bool // closed by its reader
	cutBy  bool // cut by the injector
}

// track registers a watch body, to be cut after d (0: only by SetDown).
func (in *Injector) track(body io.ReadCloser, cancel context.CancelFunc, d time.Duration) io.ReadCloser {
	b := &cutBody{in: in, body: body, cancel: cancel}
	in.mu.Lock()
	down := in.down
	in.watches[b] = struct{}{}
	in.mu.Unlock()
	switch {
	case down:
		b.cut()
	case d > 0:
		b.mu.Lock()
		b.timer = time.AfterFunc(d, func() {
			in.mu.Lock()
			off := in.f.WatchDisconnectRate == 0
			in.mu.Unlock()
			if !off {
				b.cut()
			}
		})
		b.mu.Unlock()
	}
	return b
}

func (b *cutBody) cut() {
	b.mu.Lock()
	if b.done || b.cutBy {
		b.mu.Unlock()
		return
	}
	b.cutBy = true
	b.mu.Unlock()
	b.in.watchCuts.Add(1)
	b.cancel()
}

func (b *cutBody) isCut() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cutBy
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.isCut() {
		return 0, io.ErrUnexpectedEOF
	}
	n, err := b.body.Read(p)
	if err != nil && b.isCut() {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *cutBody) Close() error {
	b.mu.Lock()
	b.done = true
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
	b.in.mu.Lock()
	delete(b.in.watches, b)
	b.in.mu.Unlock()
	err := b.body.Close()
	b.cancel()
	return err
}

// errorResponse is the API server's answer for code, with the metav1.Status body it sends.
func errorResponse(req *http.Request, code int, retryAfter time.Duration) *http.Response {
	group, resource, name := target(req.URL.Path)
	qualified := resource
	if group != "" {
		qualified += "." + group
	}
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Code:     int32(code),
		Details:  &metav1.StatusDetails{Name: name, Group: group, Kind: resource},
	}
	h := http.Header{"Content-Type": []string{"application/json"}}
	switch code {
	case http.StatusConflict:
		st.Reason = metav1.StatusReasonConflict
		st.Message = fmt.Sprintf("Operation cannot be fulfilled on %s %q: the object has been modified; please apply your changes to the latest version and try again", qualified, name)
	case http.StatusTooManyRequests:
		secs := int(retryAfter / time.Second)
		st.Reason = metav1.StatusReasonTooManyRequests
		st.Message = "Too many requests, please try again later."
		st.Details = &metav1.StatusDetails{RetryAfterSeconds: int32(secs)}
		h.Set("Retry-After", strconv.Itoa(secs))
	default:
		st.Reason = metav1.StatusReasonInternalError
		st.Message = "Internal error occurred: chaos: injected internal error"
		st.Details.Causes = []metav1.StatusCause{{Message: "chaos: injected internal error"}}
	}
	body, _ := json.Marshal(st)
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", code, http.StatusText(code)),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

func isWatch(req *http.Request) bool {
	if v := req.URL.Query().Get("watch"); v == "true" || v == "1" {
		return true
	}
	return strings.Contains(req.URL.Path, "/watch/")
}

// target parses an API path into the group, resource and object name it addresses:
// /api/v1[/namespaces/ns]/resource[/name] or /apis/group/version[/namespaces/ns]/resource[/name].
func target(path string) (group, resource, name string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return "", "", ""
	}
	if len(parts) > 0 && parts[0] == "watch" {
		parts = parts[1:]
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) > 0 {
		resource = parts[0]
	}
	if len(parts) > 1 {
		name = parts[1]
	}
	return group, resource, name
}
