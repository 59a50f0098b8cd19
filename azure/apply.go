package azure

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// DefaultPollFrequency is how often an [Applier] polls a long-running operation unless
// Applier.PollFrequency says otherwise.
const DefaultPollFrequency = 30 * time.Second

// Clients are the Azure Resource Manager clients an [Applier] reads and writes with, one per
// [StepKind]. Build them with [NewClients]; a field left nil makes plans with that kind of step
// fail before anything is written. Clients are safe for concurrent use.
type Clients struct {
	// SubscriptionID is the subscription the clients were made for; a step whose resource is
	// in another subscription is rejected. Empty: not checked.
	SubscriptionID string

	ResourceGroups  *armresources.ResourceGroupsClient
	VirtualNetworks *armnetwork.VirtualNetworksClient
	ManagedClusters *armcontainerservice.ManagedClustersClient
	AgentPools      *armcontainerservice.AgentPoolsClient
}

// DefaultRetryOptions are the retry settings [NewClients] uses for every field the caller's
// arm.ClientOptions.Retry leaves zero. They suit ARM throttling: 408, 429 and 5xx responses are
// retried up to 5 times; the wait honours the service's Retry-After (and retry-after-ms)
// header, else backs off exponentially from 2 s (2 s, 6 s, 14 s, 30 s, 60 s, ±20 % jitter),
// capped at 2 minutes. azcore gives up without waiting when a Retry-After exceeds
// MaxRetryDelay, so the cap is set above the minute-long waits ARM asks for under
// subscription-wide throttling. TryTimeout stays 0: a request is bounded by its context.
// Set MaxRetries to -1 for no retries.
func DefaultRetryOptions() policy.RetryOptions {
	return policy.RetryOptions{
		MaxRetries:    5,
		RetryDelay:    2 * time.Second,
		MaxRetryDelay: 2 * time.Minute,
		StatusCodes: []int{
			http.StatusRequestTimeout,
			http.StatusTooManyRequests,
			http.StatusInternalServerError,
			http.StatusBadGateway,
			http.StatusServiceUnavailable,
			http.StatusGatewayTimeout,
		},
	}
}

// NewClients makes the [Clients] for subscriptionID. cred is typically from [NewCredential].
// opts may be nil; it is copied, never modified. On the copy NewClients
//
//   - fills each zero field of Retry from [DefaultRetryOptions] (StatusCodes only when
//     ShouldRetry is nil too);
//   - turns Logging.IncludeBody off: request bodies carry secrets (windowsProfile.adminPassword,
//     servicePrincipalProfile.secret), and azcore's request log prints bodies when it is on;
//   - adds a per-call policy that sends a step's APIVersion (see [Step]) instead of the
//     SDK's own api-version on the requests an [Applier] makes for that step.
//
// The clients speak armresources/v3 (2025-04-01), armnetwork/v9 (2025-05-01) and
// armcontainerservice/v8 (2025-10-01) by default. opts.Transport is the seam for tests: the
// SDK's fake servers (…/fake packages) plug in there.
func NewClients(subscriptionID string, cred azcore.TokenCredential, opts *arm.ClientOptions) (*Clients, error) {
	if subscriptionID == "" {
		return nil, errors.New("new clients: subscriptionID is empty")
	}
	if cred == nil {
		return nil, errors.New("new clients: credential is nil")
	}
	var o arm.ClientOptions
	if opts != nil {
		o = *opts
	}
	d := DefaultRetryOptions()
	if o.Retry.MaxRetries == 0 {
		o.Retry.MaxRetries = d.MaxRetries
	}
	if o.Retry.RetryDelay == 0 {
		o.Retry.RetryDelay = d.RetryDelay
	}
	if o.Retry.MaxRetryDelay == 0 {
		o.Retry.MaxRetryDelay = d.MaxRetryDelay
	}
	if o.Retry.StatusCodes == nil && o.Retry.ShouldRetry == nil {
		o.Retry.StatusCodes = d.StatusCodes
	}
	o.Logging.IncludeBody = false
	o.PerCallPolicies = append(slices.Clip(o.PerCallPolicies), apiVersionPolicy{})

	c := &Clients{SubscriptionID: subscriptionID}
	var err error
	if c.ResourceGroups, err = armresources.NewResourceGroupsClient(subscriptionID, cred, &o); err != nil {
		return nil, fmt.Errorf("new resource groups client: %w", err)
	}
	if c.VirtualNetworks, err = armnetwork.NewVirtualNetworksClient(subscriptionID, cred, &o); err != nil {
		return nil, fmt.Errorf("new virtual networks client: %w", err)
	}
	if c.ManagedClusters, err = armcontainerservice.NewManagedClustersClient(subscriptionID, cred, &o); err != nil {
		return nil, fmt.Errorf("new managed clusters client: %w", err)
	}
	if c.AgentPools, err = armcontainerservice.NewAgentPoolsClient(subscriptionID, cred, &o); err != nil {
		return nil, fmt.Errorf("new agent pools client: %w", err)
	}
	return c, nil
}

// apiVersionKey carries a step's api-version in the context of the requests made for it.
type apiVersionKey struct{}

// apiVersionPolicy sets the api-version query parameter from the request's context, if any.
type apiVersionPolicy struct{}

func (apiVersionPolicy) Do(req *policy.Request) (*http.Response, error) {
	if v, ok := req.Raw().Context().Value(apiVersionKey{}).(string); ok && v != "" {
		q := req.Raw().URL.Query()
		q.Set("api-version", v)
		req.Raw().URL.RawQuery = q.Encode()
	}
	return req.Next()
}

// Outcome is what applying one step did.
type Outcome string

// Step outcomes.
const (
	// OutcomeCreated: the resource did not exist and was created.
	OutcomeCreated Outcome = "created"
	// OutcomeUpdated: the resource existed and differed from the step's body; it was updated.
	OutcomeUpdated Outcome = "updated"
	// OutcomeUnchanged: the resource already matched the step (or, for a DELETE, was absent);
	// no request was sent.
	OutcomeUnchanged Outcome = "unchanged"
	// OutcomeResumed: an operation a previous, interrupted apply started was polled to its end.
	OutcomeResumed Outcome = "resumed"
	// OutcomeDeleted: the resource was deleted (Method DELETE).
	OutcomeDeleted Outcome = "deleted"
	// OutcomeFailed: the step failed; StepResult.Err says why.
	OutcomeFailed Outcome = "failed"
)

// Phase is where a step is, as reported to Applier.OnProgress.
type Phase string

// Step phases, in order.
const (
	// PhaseStarted: the step begins; its resource is read.
	PhaseStarted Phase = "started"
	// PhaseSubmitted: Azure accepted the request; a long-running operation runs.
	PhaseSubmitted Phase = "submitted"
	// PhaseResuming: polling an operation a previous apply started (its resume token was
	// in the store).
	PhaseResuming Phase = "resuming"
	// PhaseDone: the step finished; StepProgress.Outcome says how.
	PhaseDone Phase = "done"
	// PhaseFailed: the step failed; StepProgress.Err says why.
	PhaseFailed Phase = "failed"
)

// StepProgress reports a step's progress to Applier.OnProgress.
type StepProgress struct {
	// Index is the step's index in ClusterPlan.Steps; Total is len(ClusterPlan.Steps).
	Index, Total int
	Kind         StepKind
	ResourceID   string
	Phase        Phase
	// Outcome is set in PhaseDone, Err in PhaseFailed.
	Outcome Outcome
	Err     error
	// Elapsed is the time since the step started.
	Elapsed time.Duration
}

// StepResult is the outcome of one step of an apply.
type StepResult struct {
	// Index is the step's index in ClusterPlan.Steps.
	Index      int
	Kind       StepKind
	ResourceID string
	Outcome    Outcome
	// Duration is how long the step took, including polling.
	Duration time.Duration
	// Err is the step's error when Outcome is OutcomeFailed.
	Err error
}

// ApplyResult lists the outcome of each step an apply attempted, in plan order. Steps after a
// failed one were not attempted and are not listed.
type ApplyResult struct {
	// Cluster is the plan's cluster resource ID.
	Cluster string
	Steps   []StepResult
}

// Changed reports whether any step changed something in Azure (created, updated, deleted, or
// completed a resumed operation).
func (r *ApplyResult) Changed() bool {
	for _, s := range r.Steps {
		switch s.Outcome {
		case OutcomeCreated, OutcomeUpdated, OutcomeDeleted, OutcomeResumed:
			return true
		}
	}
	return false
}

// StepError is the error of a failed step. It wraps the cause: an *azcore.ResponseError when
// Azure refused (its ErrorCode, StatusCode and message are AKS's, untouched), a context error
// when the apply was interrupted. Use errors.As to get either.
type StepError struct {
	// Index is the step's index in ClusterPlan.Steps; Total is len(ClusterPlan.Steps).
	Index, Total int
	Kind         StepKind
	ResourceID   string
	// Op is the operation that failed: "read", "create or update", "delete", "poll",
	// "load resume token".
	Op  string
	Err error
}

// Error implements error; it counts steps from 1.
func (e *StepError) Error() string {
	return fmt.Sprintf("apply step %d/%d (%s %s): %s: %v", e.Index+1, e.Total, e.Kind, e.ResourceID, e.Op, e.Err)
}

// Unwrap returns the cause.
func (e *StepError) Unwrap() error { return e.Err }

// ErrInvalidStep is wrapped by the error [Applier.Apply] returns when a plan step cannot be
// applied as written (unknown kind or method, a resource ID of the wrong type, a body the SDK
// model cannot carry). Apply checks every step before sending anything, so such an error
// changes nothing in Azure.
var ErrInvalidStep = errors.New("invalid plan step")

// Applier executes [ClusterPlan]s against Azure with the SDK's clients and pollers.
//
// For each step, in order, Apply
//
//  1. resumes the step's long-running operation if Store holds a resume token for it (an
//     earlier apply was interrupted while Azure worked on it), polling it to its end without
//     sending the request again;
//  2. otherwise reads the resource (404 means absent) and skips the step as
//     [OutcomeUnchanged] when the resource already satisfies it: every field the step's body
//     sets is equal, recursively, in the resource Azure returns, read-only fields
//     (provisioningState, fqdn, …) and write-only secrets (adminPassword, secret) ignored,
//     arrays of named elements (agent pools, subnets) matched by name (elements the resource
//     has beyond the body's are left alone), other arrays element by element, resource IDs
//     and locations compared without regard to case, and the resource's provisioningState
//     is Succeeded. Re-applying an applied plan therefore sends no writes. A field Azure
//     does not echo back makes its step re-apply every time, which is harmless: PUT is
//     idempotent;
//  3. otherwise sends the request (BeginCreateOrUpdate, or BeginDelete for Method DELETE; a
//     resource group's CreateOrUpdate is synchronous), saves the poller's resume token in
//     Store, polls until the operation ends every PollFrequency (or as Azure's Retry-After
//     says) and deletes the token.
//
// A failed step stops the apply; later steps are not attempted. The token of an operation
// whose outcome is unknown (context ended, connection lost, Azure throttling or unavailable)
// is kept, so the next Apply resumes it; otherwise it is deleted.
//
// Nothing secret is logged: Apply logs resource IDs, phases, outcomes, durations and Azure's
// error codes and messages, never request bodies or tokens.
//
// The zero Applier with Clients set is ready to use. An Applier may run several Apply calls at
// once for different plans; two concurrent Apply calls for the same plan race.
type Applier struct {
	// Clients are the ARM clients; required.
	Clients *Clients
	// Store keeps resume tokens across interrupted applies; nil keeps them in memory for the
	// duration of one Apply call only (an interrupted apply then starts the step over).
	Store ResumeStore
	// PollFrequency is how often a long-running operation is polled when Azure gives no
	// Retry-After; default [DefaultPollFrequency] (30 s). azcore rejects less than 1 s
	// outside tests.
	PollFrequency time.Duration
	// Logger receives one record per step and phase; nil discards.
	Logger *slog.Logger
	// OnProgress, if set, is called synchronously from Apply's goroutine at every phase of
	// every step.
	OnProgress func(StepProgress)
}

// preparedStep is a validated step, ready to apply.
type preparedStep struct {
	index  int
	step   Step
	method string
	id     *arm.ResourceID
	ops    *resourceOps
	model  any // the body unmarshaled into the SDK model (PUT)
	key    string
}

// Apply executes p's steps in order and returns the outcome of each. On error the result
// lists the steps up to and including the failed one, and the error is a [*StepError] (a
// step failed), or wraps [ErrInvalidStep] (nothing was sent).
func (a *Applier) Apply(ctx context.Context, p *ClusterPlan) (*ApplyResult, error) {
	if p == nil {
		return nil, errors.New("apply: plan is nil")
	}
	if a.Clients == nil {
		return nil, errors.New("apply: Applier.Clients is nil")
	}
	steps, err := a.prepare(p)
	if err != nil {
		return nil, err
	}
	store := a.Store
	if store == nil {
		store = &MemoryResumeStore{}
	}
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	freq := a.PollFrequency
	if freq == 0 {
		freq = DefaultPollFrequency
	}
	r := &stepRunner{a: a, store: store, log: log, freq: freq, total: len(steps)}

	res := &ApplyResult{Cluster: p.Cluster}
	for _, ps := range steps {
		start := time.Now()
		r.progress(ps, PhaseStarted, start, "", nil)
		log.LogAttrs(ctx, slog.LevelDebug, "step started", r.attrs(ps)...)
		outcome, op, err := r.apply(ctx, ps, start)
		d := time.Since(start)
		if err != nil {
			serr := &StepError{Index: ps.index, Total: len(steps), Kind: ps.step.Kind, ResourceID: ps.step.ResourceID, Op: op, Err: err}
			res.Steps = append(res.Steps, StepResult{Index: ps.index, Kind: ps.step.Kind, ResourceID: ps.step.ResourceID, Outcome: OutcomeFailed, Duration: d, Err: serr})
			attrs := append(r.attrs(ps), slog.String("op", op), slog.Duration("duration", d))
			log.LogAttrs(ctx, slog.LevelError, "step failed", append(attrs, errorAttrs(err)...)...)
			r.progress(ps, PhaseFailed, start, "", serr)
			return res, serr
		}
		res.Steps = append(res.Steps, StepResult{Index: ps.index, Kind: ps.step.Kind, ResourceID: ps.step.ResourceID, Outcome: outcome, Duration: d})
		log.LogAttrs(ctx, slog.LevelInfo, "step applied", append(r.attrs(ps), slog.String("outcome", string(outcome)), slog.Duration("duration", d))...)
		r.progress(ps, PhaseDone, start, outcome, nil)
	}
	return res, nil
}

// prepare checks every step before anything is sent.
func (a *Applier) prepare(p *ClusterPlan) ([]preparedStep, error) {
	out := make([]preparedStep, 0, len(p.Steps))
	for i, s := range p.Steps {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("apply: step %d/%d (%s %s): %w: %s", i+1, len(p.Steps), s.Kind, s.ResourceID, ErrInvalidStep, fmt.Sprintf(format, args...))
		}
		ops, err := a.Clients.ops(s.Kind)
		if err != nil {
			return nil, bad("%v", err)
		}
		method := strings.ToUpper(s.Method)
		if method == "" {
			method = http.MethodPut
		}
		if method != http.MethodPut && method != http.MethodDelete {
			return nil, bad("method %q: want PUT or DELETE", s.Method)
		}
		id, err := arm.ParseResourceID(s.ResourceID)
		if err != nil {
			return nil, bad("resourceId: %v", err)
		}
		if !strings.EqualFold(id.ResourceType.String(), ops.resourceType) {
			return nil, bad("resourceId is a %s, want %s", id.ResourceType, ops.resourceType)
		}
		if sub := a.Clients.SubscriptionID; sub != "" && !strings.EqualFold(id.SubscriptionID, sub) {
			return nil, bad("resourceId is in subscription %s, the clients are for %s", id.SubscriptionID, sub)
		}
		ps := preparedStep{index: i, step: s, method: method, id: id, ops: ops, key: resumeKey(s)}
		if method == http.MethodPut {
			if len(bytes.TrimSpace(s.Body)) == 0 {
				return nil, bad("body is empty")
			}
			m := ops.newModel()
			if err := json.Unmarshal(s.Body, m); err != nil {
				return nil, bad("body: %v", err)
			}
			// The SDK sends its own serialization of the model: a field the model does not
			// know would silently be dropped, so refuse the step instead.
			sent, err := json.Marshal(m)
			if err != nil {
				return nil, bad("body: %v", err)
			}
			if ok, where := satisfies(s.Body, sent); !ok {
				return nil, bad("body field %s is not carried by the SDK model (api-version %s)", where, ops.sdkAPIVersion)
			}
			ps.model = m
		}
		out = append(out, ps)
	}
	return out, nil
}

// resumeKey derives the resume store key of a step: a digest of everything that makes the
// request what it is, so a changed step never resumes an operation of its earlier version.
func resumeKey(s Step) string {
	h := sha256.New()
	for _, f := range []string{string(s.Kind), strings.ToUpper(s.Method), strings.ToLower(s.ResourceID), s.APIVersion} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	h.Write(s.Body)
	return hex.EncodeToString(h.Sum(nil))
}

// stepRunner holds the per-Apply settings.
type stepRunner struct {
	a     *Applier
	store ResumeStore
	log   *slog.Logger
	freq  time.Duration
	total int
}

func (r *stepRunner) attrs(ps preparedStep) []slog.Attr {
	return []slog.Attr{
		slog.Int("step", ps.index+1),
		slog.String("kind", string(ps.step.Kind)),
		slog.String("method", ps.method),
		slog.String("resource", ps.step.ResourceID),
	}
}

func (r *stepRunner) progress(ps preparedStep, ph Phase, start time.Time, o Outcome, err error) {
	if r.a.OnProgress == nil {
		return
	}
	r.a.OnProgress(StepProgress{
		Index: ps.index, Total: r.total, Kind: ps.step.Kind, ResourceID: ps.step.ResourceID,
		Phase: ph, Outcome: o, Err: err, Elapsed: time.Since(start),
	})
}

// apply runs one step. op names the operation that failed.
func (r *stepRunner) apply(ctx context.Context, ps preparedStep, start time.Time) (o Outcome, op string, err error) {
	// 1. An operation an earlier apply started and lost track of.
	tok, ok, err := r.store.Load(ps.key)
	if err != nil {
		if !errors.Is(err, ErrCorruptResumeToken) {
			return "", "load resume token", err
		}
		r.log.LogAttrs(ctx, slog.LevelWarn, "discarding corrupt resume token", append(r.attrs(ps), slog.String("error", err.Error()))...)
		if err := r.store.Delete(ps.key); err != nil {
			return "", "delete resume token", err
		}
		ok = false
	}
	if ok {
		var l lro
		if ps.method == http.MethodDelete {
			l, err = ps.ops.del(ctx, ps.id, tok)
		} else {
			l, err = ps.ops.put(ctx, ps.id, nil, tok)
		}
		if err != nil {
			// The token does not fit this SDK's pollers (another version wrote it): start over.
			r.log.LogAttrs(ctx, slog.LevelWarn, "discarding unusable resume token", append(r.attrs(ps), slog.String("error", err.Error()))...)
			if err := r.store.Delete(ps.key); err != nil {
				return "", "delete resume token", err
			}
		} else {
			r.log.LogAttrs(ctx, slog.LevelInfo, "resuming operation", r.attrs(ps)...)
			r.progress(ps, PhaseResuming, start, "", nil)
			if err := r.wait(ctx, ps, l, false); err != nil {
				return "", "poll", err
			}
			return OutcomeResumed, "", nil
		}
	}

	// 2. Read the resource, with the step's api-version.
	vctx := ctx
	if ps.step.APIVersion != "" {
		vctx = context.WithValue(ctx, apiVersionKey{}, ps.step.APIVersion)
	}
	cur, err := ps.ops.get(vctx, ps.id)
	exists := true
	if err != nil {
		if !isNotFound(err) {
			return "", "read", err
		}
		exists = false
	}

	if ps.method == http.MethodDelete {
		if !exists {
			return OutcomeUnchanged, "", nil
		}
		l, err := ps.ops.del(vctx, ps.id, "")
		if err != nil {
			return "", "delete", err
		}
		r.submitted(ctx, ps, start, l)
		if err := r.wait(ctx, ps, l, true); err != nil {
			return "", "poll", err
		}
		return OutcomeDeleted, "", nil
	}

	if exists {
		curJSON, err := json.Marshal(cur)
		if err != nil {
			return "", "read", err
		}
		same, where := satisfies(ps.step.Body, curJSON)
		state := provisioningState(curJSON)
		if same && (state == "" || strings.EqualFold(state, "Succeeded")) {
			return OutcomeUnchanged, "", nil
		}
		r.log.LogAttrs(ctx, slog.LevelDebug, "resource differs", append(r.attrs(ps), slog.String("field", where), slog.String("provisioningState", state))...)
	}

	// 3. Write.
	l, err := ps.ops.put(vctx, ps.id, ps.model, "")
	if err != nil {
		return "", "create or update", err
	}
	r.submitted(ctx, ps, start, l)
	if err := r.wait(ctx, ps, l, true); err != nil {
		return "", "poll", err
	}
	if exists {
		return OutcomeUpdated, "", nil
	}
	return OutcomeCreated, "", nil
}

func (r *stepRunner) submitted(ctx context.Context, ps preparedStep, start time.Time, l lro) {
	if l.Done() {
		return
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "operation submitted", r.attrs(ps)...)
	r.progress(ps, PhaseSubmitted, start, "", nil)
}

// wait polls l to its end. A fresh operation's resume token is saved first; the token is
// deleted once the operation's outcome is known.
func (r *stepRunner) wait(ctx context.Context, ps preparedStep, l lro, fresh bool) error {
	if l.Done() {
		return nil
	}
	if fresh {
		if tok, err := l.ResumeToken(); err == nil {
			if err := r.store.Save(ps.key, tok); err != nil {
				r.log.LogAttrs(ctx, slog.LevelWarn, "resume token not saved; an interrupted apply will not resume this step", append(r.attrs(ps), slog.String("error", err.Error()))...)
			}
		}
	}
	err := l.wait(ctx, r.freq)
	if err == nil || operationOver(l, err) {
		if derr := r.store.Delete(ps.key); derr != nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "resume token not deleted", append(r.attrs(ps), slog.String("error", derr.Error()))...)
		}
	}
	return err
}

// operationOver reports whether an operation whose polling returned err has ended (so its
// resume token is useless), as opposed to being possibly still running.
func operationOver(l lro, err error) bool {
	if l.Done() {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return false // lost connection: the operation may be running
	}
	switch re.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return false
	}
	return true
}

func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// errorAttrs describes err for the log: Azure's status, code and message for a response
// error (never the request), the error text otherwise.
func errorAttrs(err error) []slog.Attr {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return []slog.Attr{slog.String("error", err.Error())}
	}
	attrs := []slog.Attr{slog.Int("status", re.StatusCode), slog.String("code", re.ErrorCode)}
	if m := responseErrorMessage(re); m != "" {
		attrs = append(attrs, slog.String("message", m))
	}
	return attrs
}

// responseErrorMessage returns the message of an ARM error body ({"error":{"message":…}} or
// {"message":…}), or "".
func responseErrorMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil || re.RawResponse.Body == nil {
		return ""
	}
	b, err := runtime.Payload(re.RawResponse)
	if err != nil || len(b) == 0 {
		return ""
	}
	var body struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &body) != nil {
		return ""
	}
	if body.Error != nil && body.Error.Message != "" {
		return body.Error.Message
	}
	return body.Message
}

// provisioningState returns properties.provisioningState of a resource's JSON, or "".
func provisioningState(b []byte) string {
	var r struct {
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(b, &r)
	return r.Properties.ProvisioningState
}

// lro is a long-running operation: the SDK's poller, or a synchronous call already done.
type lro interface {
	Done() bool
	ResumeToken() (string, error)
	wait(ctx context.Context, freq time.Duration) error
}

type sdkLRO[T any] struct{ p *runtime.Poller[T] }

func (l sdkLRO[T]) Done() bool                   { return l.p.Done() }
func (l sdkLRO[T]) ResumeToken() (string, error) { return l.p.ResumeToken() }
func (l sdkLRO[T]) wait(ctx context.Context, freq time.Duration) error {
	_, err := l.p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: freq})
	return err
}

func newLRO[T any](p *runtime.Poller[T], err error) (lro, error) {
	if err != nil {
		return nil, err
	}
	return sdkLRO[T]{p}, nil
}

// doneLRO is a synchronous operation that has completed.
type doneLRO struct{}

func (doneLRO) Done() bool                                { return true }
func (doneLRO) ResumeToken() (string, error)              { return "", errors.New("synchronous operation") }
func (doneLRO) wait(context.Context, time.Duration) error { return nil }

// resourceOps are the SDK calls for one kind of resource.
type resourceOps struct {
	resourceType  string // as arm.ResourceType.String() spells it
	sdkAPIVersion string
	newModel      func() any
	get           func(ctx context.Context, id *arm.ResourceID) (any, error)
	// put sends model, or resumes the operation of token when token is set (model nil).
	put func(ctx context.Context, id *arm.ResourceID, model any, token string) (lro, error)
	del func(ctx context.Context, id *arm.ResourceID, token string) (lro, error)
}

func (c *Clients) ops(kind StepKind) (*resourceOps, error) {
	switch kind {
	case KindResourceGroup:
		cl := c.ResourceGroups
		if cl == nil {
			return nil, errors.New("Clients.ResourceGroups is nil")
		}
		return &resourceOps{
			resourceType:  "Microsoft.Resources/resourceGroups",
			sdkAPIVersion: "2025-04-01",
			newModel:      func() any { return &armresources.ResourceGroup{} },
			get: func(ctx context.Context, id *arm.ResourceID) (any, error) {
				r, err := cl.Get(ctx, id.ResourceGroupName, nil)
				return r.ResourceGroup, err
			},
			put: func(ctx context.Context, id *arm.ResourceID, m any, token string) (lro, error) {
				if token != "" {
					return nil, errors.New("resource group writes are synchronous and cannot be resumed")
				}
				_, err := cl.CreateOrUpdate(ctx, id.ResourceGroupName, *m.(*armresources.ResourceGroup), nil)
				if err != nil {
					return nil, err
				}
				return doneLRO{}, nil
			},
			del: func(ctx context.Context, id *arm.ResourceID, token string) (lro, error) {
				return newLRO(cl.BeginDelete(ctx, id.ResourceGroupName, &armresources.ResourceGroupsClientBeginDeleteOptions{ResumeToken: token}))
			},
		}, nil
	case KindVirtualNetwork:
		cl := c.VirtualNetworks
		if cl == nil {
			return nil, errors.New("Clients.VirtualNetworks is nil")
		}
		return &resourceOps{
			resourceType:  "Microsoft.Network/virtualNetworks",
			sdkAPIVersion: "2025-05-01",
			newModel:      func() any { return &armnetwork.VirtualNetwork{} },
			get: func(ctx context.Context, id *arm.ResourceID) (any, error) {
				r, err := cl.Get(ctx, id.ResourceGroupName, id.Name, nil)
				return r.VirtualNetwork, err
			},
			put: func(ctx context.Context, id *arm.ResourceID, m any, token string) (lro, error) {
				var v armnetwork.VirtualNetwork
				if m != nil {
					v = *m.(*armnetwork.VirtualNetwork)
				}
				return newLRO(cl.BeginCreateOrUpdate(ctx, id.ResourceGroupName, id.Name, v, &armnetwork.VirtualNetworksClientBeginCreateOrUpdateOptions{ResumeToken: token}))
			},
			del: func(ctx context.Context, id *arm.ResourceID, token string) (lro, error) {
				return newLRO(cl.BeginDelete(ctx, id.ResourceGroupName, id.Name, &armnetwork.VirtualNetworksClientBeginDeleteOptions{ResumeToken: token}))
			},
		}, nil
	case KindManagedCluster:
		cl := c.ManagedClusters
		if cl == nil {
			return nil, errors.New("Clients.ManagedClusters is nil")
		}
		return &resourceOps{
			resourceType:  "Microsoft.ContainerService/managedClusters",
			sdkAPIVersion: "2025-10-01",
			newModel:      func() any { return &armcontainerservice.ManagedCluster{} },
			get: func(ctx context.Context, id *arm.ResourceID) (any, error) {
				r, err := cl.Get(ctx, id.ResourceGroupName, id.Name, nil)
				return r.ManagedCluster, err
			},
			put: func(ctx context.Context, id *arm.ResourceID, m any, token string) (lro, error) {
				var v armcontainerservice.ManagedCluster
				if m != nil {
					v = *m.(*armcontainerservice.ManagedCluster)
				}
				return newLRO(cl.BeginCreateOrUpdate(ctx, id.ResourceGroupName, id.Name, v, &armcontainerservice.ManagedClustersClientBeginCreateOrUpdateOptions{ResumeToken: token}))
			},
			del: func(ctx context.Context, id *arm.ResourceID, token string) (lro, error) {
				return newLRO(cl.BeginDelete(ctx, id.ResourceGroupName, id.Name, &armcontainerservice.ManagedClustersClientBeginDeleteOptions{ResumeToken: token}))
			},
		}, nil
	case KindAgentPool:
		cl := c.AgentPools
		if cl == nil {
			return nil, errors.New("Clients.AgentPools is nil")
		}
		return &resourceOps{
			resourceType:  "Microsoft.ContainerService/managedClusters/agentPools",
			sdkAPIVersion: "2025-10-01",
			newModel:      func() any { return &armcontainerservice.AgentPool{} },
			get: func(ctx context.Context, id *arm.ResourceID) (any, error) {
				r, err := cl.Get(ctx, id.ResourceGroupName, id.Parent.Name, id.Name, nil)
				return r.AgentPool, err
			},
			put: func(ctx context.Context, id *arm.ResourceID, m any, token string) (lro, error) {
				var v armcontainerservice.AgentPool
				if m != nil {
					v = *m.(*armcontainerservice.AgentPool)
				}
				return newLRO(cl.BeginCreateOrUpdate(ctx, id.ResourceGroupName, id.Parent.Name, id.Name, v, &armcontainerservice.AgentPoolsClientBeginCreateOrUpdateOptions{ResumeToken: token}))
			},
			del: func(ctx context.Context, id *arm.ResourceID, token string) (lro, error) {
				return newLRO(cl.BeginDelete(ctx, id.ResourceGroupName, id.Parent.Name, id.Name, &armcontainerservice.AgentPoolsClientBeginDeleteOptions{ResumeToken: token}))
			},
		}, nil
	default:
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
}

// satisfies reports whether the resource JSON have already satisfies the request body want:
// every field want sets is equal in have (see [Applier] for the rules). If not, where names
// the first differing field ("properties.networkProfile.networkDataplane").
func satisfies(want, have []byte) (ok bool, where string) {
	var w, h any
	if err := json.Unmarshal(want, &w); err != nil {
		return false, "(body is not JSON)"
	}
	if err := json.Unmarshal(have, &h); err != nil {
		return false, "(resource is not JSON)"
	}
	return subset(w, h, nil)
}

func subset(w, h any, path []string) (bool, string) {
	at := func() string {
		if len(path) == 0 {
			return "(root)"
		}
		return strings.ReplaceAll(strings.Join(path, "."), ".[", "[")
	}
	switch wv := w.(type) {
	case map[string]any:
		hv, isMap := h.(map[string]any)
		if h != nil && !isMap {
			return false, at()
		}
		keys := make([]string, 0, len(wv))
		for k := range wv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if readOnlyField(path, k) || writeOnlyField(path, k) {
				continue
			}
			if k == "name" && len(path) > 0 && strings.HasPrefix(path[len(path)-1], "[") {
				continue // an element of a named array, matched by name already
			}
			hk, found := hv[k]
			if !found {
				for k2, v2 := range hv { // map keys that are resource IDs differ in case
					if strings.EqualFold(k, k2) {
						hk = v2
						break
					}
				}
			}
			if ok, where := subset(wv[k], hk, append(path[:len(path):len(path)], k)); !ok {
				return false, where
			}
		}
		return true, ""
	case []any:
		ha, isArr := h.([]any)
		if h != nil && !isArr {
			return false, at()
		}
		if names, ok := elementNames(wv); ok {
			byName := make(map[string]any, len(ha))
			if hn, ok := elementNames(ha); ok {
				for i, n := range hn {
					byName[strings.ToLower(n)] = ha[i]
				}
			}
			for i, n := range names {
				he, found := byName[strings.ToLower(n)]
				if !found {
					return false, at() + "[" + n + "]"
				}
				if ok, where := subset(wv[i], he, append(path[:len(path):len(path)], "["+n+"]")); !ok {
					return false, where
				}
			}
			return true, ""
		}
		if len(wv) != len(ha) {
			return false, at()
		}
		for i := range wv {
			if ok, where := subset(wv[i], ha[i], append(path[:len(path):len(path)], fmt.Sprintf("[%d]", i))); !ok {
				return false, where
			}
		}
		return true, ""
	case nil:
		return h == nil, at()
	case string:
		hs, ok := h.(string)
		if !ok || !stringsEqual(path, wv, hs) {
			return false, at()
		}
		return true, ""
	default: // float64, bool
		if w != h {
			return false, at()
		}
		return true, ""
	}
}

// elementNames returns the "name" of every element when all elements are objects with one.
func elementNames(a []any) ([]string, bool) {
	if len(a) == 0 {
		return nil, false
	}
	names := make([]string, len(a))
	for i, e := range a {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, false
		}
		n, ok := m["name"].(string)
		if !ok || n == "" {
			return nil, false
		}
		names[i] = n
	}
	return names, true
}

func stringsEqual(path []string, a, b string) bool {
	if a == b {
		return true
	}
	if strings.HasPrefix(strings.ToLower(a), "/subscriptions/") {
		return strings.EqualFold(a, b) // ARM resource IDs are case-insensitive
	}
	if len(path) > 0 && path[len(path)-1] == "location" {
		norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }
		return norm(a) == norm(b)
	}
	if ta, err := time.Parse(time.RFC3339Nano, a); err == nil {
		if tb, err := time.Parse(time.RFC3339Nano, b); err == nil {
			return ta.Equal(tb)
		}
	}
	return false
}

// readOnlyField reports whether key under path is set by Azure only; a body may carry it (a
// plan made from an exported resource), but it is never compared.
func readOnlyField(path []string, key string) bool {
	if len(path) == 0 {
		switch key {
		case "id", "name", "type", "etag", "systemData":
			return true
		}
	}
	switch key {
	case "provisioningState", "powerState", "fqdn", "azurePortalFQDN", "privateFQDN",
		"currentKubernetesVersion", "currentOrchestratorVersion", "nodeImageVersion",
		"maxAgentPools", "resourceGuid", "resourceUID", "effectiveOutboundIPs", "ipConfigurations",
		"ipConfigurationProfiles", "privateEndpoints", "resourceNavigationLinks",
		"serviceAssociationLinks", "issuerURL", "etag", "eTag", "systemData":
		return true
	}
	n := len(path)
	if n == 1 && path[0] == "properties" && key == "status" {
		return true
	}
	if n >= 1 && key == "identity" {
		return true // addon and ingress identities are Azure's; only the resource's own is set
	}
	if n >= 1 && path[n-1] == "identity" && (key == "principalId" || key == "tenantId") {
		return true
	}
	if n >= 2 && path[n-2] == "userAssignedIdentities" && (key == "principalId" || key == "clientId") {
		return true
	}
	return false
}

// writeOnlyField reports whether key under path is a secret Azure accepts but never returns;
// it cannot be compared, so it is ignored (rotate such secrets with the az CLI's
// reset-credentials/update commands).
func writeOnlyField(path []string, key string) bool {
	if len(path) == 0 {
		return false
	}
	switch parent := path[len(path)-1]; {
	case parent == "windowsProfile" && key == "adminPassword",
		parent == "servicePrincipalProfile" && key == "secret",
		parent == "aadProfile" && key == "serverAppSecret":
		return true
	}
	return false
}

// Redacted replaces secret values in the output of [RedactBody].
const Redacted = "REDACTED"

// RedactBody returns body with every secret value replaced by "REDACTED", for printing a
// step's body (plans shown by the CLI, logs, errors). Redacted, for any kind: adminPassword,
// password, secret, clientSecret, serverAppSecret, privateKey and SSH keyData fields,
// wherever they are; for [KindManagedCluster] also httpProxyConfig.httpProxy/httpsProxy URLs
// that carry credentials (user:password@). The result is compact JSON with sorted keys; a body
// that is not JSON is replaced whole by the JSON string "REDACTED". An empty body is returned
// as is. body is not modified.
func RedactBody(kind StepKind, body []byte) []byte {
	if len(bytes.TrimSpace(body)) == 0 {
		return body
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil || d.More() {
		return []byte(`"` + Redacted + `"`)
	}
	v = redact(kind, v, nil)
	out, err := json.Marshal(v)
	if err != nil {
		return []byte(`"` + Redacted + `"`)
	}
	return out
}

func redact(kind StepKind, v any, path []string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e != nil && secretValue(kind, path, k, e) {
				x[k] = Redacted
				continue
			}
			x[k] = redact(kind, e, append(path[:len(path):len(path)], k))
		}
	case []any:
		for i, e := range x {
			x[i] = redact(kind, e, path)
		}
	}
	return v
}

// secretValue reports whether the value v of key under path is a secret.
func secretValue(kind StepKind, path []string, key string, v any) bool {
	switch strings.ToLower(key) {
	case "adminpassword", "password", "secret", "clientsecret", "serverappsecret", "privatekey", "keydata":
		return true
	}
	if kind == KindManagedCluster && (key == "httpProxy" || key == "httpsProxy") &&
		len(path) > 0 && path[len(path)-1] == "httpProxyConfig" {
		s, _ := v.(string)
		u, err := url.Parse(s)
		return err != nil || u.User != nil
	}
	return false
}
