package azmonitor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"none", nil, 0},
		{"seconds", map[string]string{"Retry-After": "7"}, 7 * time.Second},
		{"zero", map[string]string{"Retry-After": "0"}, 0},
		{"negative", map[string]string{"Retry-After": "-3"}, 0},
		{"capped", map[string]string{"Retry-After": "86400"}, MaxRetryAfter},
		{"http-date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"http-date in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"ms first", map[string]string{"Retry-After-Ms": "250", "Retry-After": "9"}, 250 * time.Millisecond},
		{"x-ms", map[string]string{"x-ms-retry-after-ms": "40"}, 40 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{Header: http.Header{}}
			for k, v := range tc.header {
				resp.Header.Set(k, v)
			}
			if got := retryAfter(resp, now); got != tc.want {
				t.Errorf("retryAfter = %v, want %v", got, tc.want)
			}
		})
	}
}

type nonRetriable struct{ error }

func (nonRetriable) NonRetriable() {}

func TestClassify(t *testing.T) {
	respErr := func(status int, retryAfter string) error {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		return &azcore.ResponseError{StatusCode: status, RawResponse: &http.Response{StatusCode: status, Header: h}}
	}
	for _, tc := range []struct {
		err   error
		retry bool
		wait  time.Duration
	}{
		{respErr(429, "3"), true, 3 * time.Second},
		{respErr(408, ""), true, 0},
		{respErr(500, ""), true, 0},
		{respErr(503, "1"), true, time.Second},
		{respErr(400, ""), false, 0},
		{respErr(401, ""), false, 0},
		{respErr(403, ""), false, 0},
		{respErr(413, ""), false, 0},
		{fmt.Errorf("upload: %w", context.DeadlineExceeded), true, 0},
		{errors.New("connection reset by peer"), true, 0},
		{nonRetriable{errors.New("authenticated requests are not permitted for non TLS protected (https) endpoints")}, false, 0},
	} {
		retry, wait := classify(tc.err, time.Now())
		if retry != tc.retry || wait != tc.wait {
			t.Errorf("classify(%v) = %t, %v; want %t, %v", tc.err, retry, wait, tc.retry, tc.wait)
		}
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for attempt := range 70 {
		want := hi
		if attempt < 5 {
			want = lo << attempt
		}
		for range 20 {
			if got := backoff(lo, hi, attempt); got < want/2 || got > want {
				t.Fatalf("backoff(attempt %d) = %v, want in [%v, %v]", attempt, got, want/2, want)
			}
		}
	}
}
