package azmonitor

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// classify says whether an upload error is worth retrying and how long the service asked to
// wait (0: no Retry-After). HTTP 408, 429 and 5xx, timeouts and transport errors are
// retryable; other HTTP statuses and errors the SDK marks non-retriable are permanent.
func classify(err error, now time.Time) (retry bool, wait time.Duration) {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		wait = retryAfter(re.RawResponse, now)
		s := re.StatusCode
		return s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500, wait
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true, 0 // the per-try timeout
	}
	var nr interface{ NonRetriable() }
	if errors.As(err, &nr) {
		return false, 0
	}
	return true, 0
}

// retryAfter reads the wait a response asks for from Retry-After-Ms, x-ms-retry-after-ms or
// Retry-After (delta-seconds or an HTTP-date, RFC 9110 §10.2.3), in that order, as azcore does.
func retryAfter(resp *http.Response, now time.Time) time.Duration {
	if resp == nil {
		return 0
	}
	for _, h := range []string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if v := strings.TrimSpace(resp.Header.Get(h)); v != "" {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		if s > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// backoff returns the wait before retry attempt+1: min·2^attempt capped at max, with the
// upper half jittered so that exporters throttled together spread out.
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := hi
	if attempt < 62 {
		if s := lo << attempt; s > 0 && s < hi && s>>attempt == lo {
			d = s
		}
	}
	half := d / 2
	return d - half + rand.N(half+1)
}
