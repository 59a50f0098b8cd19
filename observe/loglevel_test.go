package observe_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/observe"
)

func TestLogLevelsSetAndGet(t *testing.T) {
	l := observe.NewLogLevels(slog.LevelInfo, "slicer", "policy")
	want := map[string]slog.Level{"slicer": slog.LevelInfo, "policy": slog.LevelInfo}
	if diff := cmp.Diff(want, l.Levels()); diff != "" {
		t.Fatalf("initial levels (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		component, level string
		want             slog.Level
	}{
		{"policy", "debug", slog.LevelDebug},
		{"policy", "WARN", slog.LevelWarn},
		{"slicer", "error", slog.LevelError},
		{"slicer", "info+2", slog.LevelInfo + 2},
		{"slicer", "Debug-4", slog.LevelDebug - 4},
	} {
		if err := l.Set(tc.component, tc.level); err != nil {
			t.Fatalf("Set(%q, %q): %v", tc.component, tc.level, err)
		}
		if got, ok := l.Level(tc.component); !ok || got != tc.want {
			t.Errorf("after Set(%q, %q): Level = %v, %v; want %v", tc.component, tc.level, got, ok, tc.want)
		}
	}
	if err := l.SetLevel("slicer", slog.LevelWarn); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Level("nope"); ok {
		t.Error("Level of an unknown component reports ok")
	}
}

func TestLogLevelsErrors(t *testing.T) {
	l := observe.NewLogLevels(slog.LevelInfo, "slicer", "policy")
	before := l.Levels()
	for _, tc := range []struct {
		name, component, level string
		is                     error
		mentions               []string
	}{
		{"unknown component", "datapth", "debug", observe.ErrUnknownComponent, []string{`"datapth"`, "policy, slicer"}},
		{"bad level", "slicer", "verbose", observe.ErrInvalidLevel, []string{`"verbose"`, `"slicer"`}},
		{"empty level", "slicer", "", observe.ErrInvalidLevel, []string{`""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := l.Set(tc.component, tc.level)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %s", err, m)
				}
			}
			if diff := cmp.Diff(before, l.Levels()); diff != "" {
				t.Errorf("a failed Set changed levels (-before +after):\n%s", diff)
			}
		})
	}
	if err := l.SetLevel("nope", slog.LevelDebug); !errors.Is(err, observe.ErrUnknownComponent) {
		t.Errorf("SetLevel unknown: err = %v", err)
	}
	if _, err := observe.ParseLevel("loud"); !errors.Is(err, observe.ErrInvalidLevel) || !strings.Contains(err.Error(), `"loud"`) {
		t.Errorf("ParseLevel(loud): err = %v", err)
	}
}

// jsonLines decodes every line of buf.
func jsonLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		delete(m, "time")
		out = append(out, m)
	}
	buf.Reset()
	return out
}

func TestLogLevelsHandler(t *testing.T) {
	var buf bytes.Buffer
	// The base handler's own level (Error) is not consulted: the component level decides.
	base := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError})
	l := observe.NewLogLevels(slog.LevelInfo)
	policy := slog.New(l.Handler("policy", base))
	slicer := l.Logger("slicer", base).With("slice", "ces-a").WithGroup("g")

	if got := l.Levels(); len(got) != 2 {
		t.Errorf("Handler did not add the components: %v", got)
	}

	policy.Debug("hidden")
	policy.Info("shown", "policy", "deny-web")
	slicer.Debug("hidden")
	want := []map[string]any{{"level": "INFO", "msg": "shown", "component": "policy", "policy": "deny-web"}}
	if diff := cmp.Diff(want, jsonLines(t, &buf)); diff != "" {
		t.Errorf("at info (-want +got):\n%s", diff)
	}

	// Runtime change reaches loggers made before it, including derived ones.
	if err := l.Set("slicer", "debug"); err != nil {
		t.Fatal(err)
	}
	policy.Debug("hidden")
	slicer.Debug("now shown", "n", 1)
	want = []map[string]any{{
		"level": "DEBUG", "msg": "now shown", "component": "slicer", "slice": "ces-a",
		"g": map[string]any{"n": 1.0},
	}}
	if diff := cmp.Diff(want, jsonLines(t, &buf)); diff != "" {
		t.Errorf("after slicer=debug (-want +got):\n%s", diff)
	}

	if err := l.Set("policy", "error"); err != nil {
		t.Fatal(err)
	}
	policy.Warn("hidden")
	if got := jsonLines(t, &buf); len(got) != 0 {
		t.Errorf("policy=error still logged %v", got)
	}
}

func TestLogLevelsConcurrent(t *testing.T) {
	l := observe.NewLogLevels(slog.LevelInfo, "flows")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			lg := l.Logger("flows", slog.DiscardHandler)
			for j := range 200 {
				_ = l.Set("flows", []string{"debug", "info"}[(i+j)%2])
				lg.Debug("x")
				_ = l.Levels()
				_ = l.Handler("c"+string(rune('a'+j%4)), slog.DiscardHandler)
			}
		})
	}
	wg.Wait()
	if got := len(l.Levels()); got != 5 {
		t.Errorf("got %d components, want 5", got)
	}
}

func TestLogLevelsHTTP(t *testing.T) {
	for _, tc := range []struct {
		name       string
		method     string
		target     string
		form       url.Values // sent as the body, form-encoded
		wantCode   int
		wantLevels map[string]string // the JSON body on success
		wantBody   string            // a substring of the body on failure
	}{
		{
			name: "list", method: http.MethodGet, target: "/", wantCode: http.StatusOK,
			wantLevels: map[string]string{"flows": "INFO", "policy": "INFO"},
		},
		{
			name: "put query", method: http.MethodPut, target: "/?component=flows&level=debug", wantCode: http.StatusOK,
			wantLevels: map[string]string{"flows": "DEBUG", "policy": "INFO"},
		},
		{
			name: "post form", method: http.MethodPost, target: "/", form: url.Values{"component": {"policy"}, "level": {"warn"}},
			wantCode: http.StatusOK, wantLevels: map[string]string{"flows": "INFO", "policy": "WARN"},
		},
		{
			name: "unknown component", method: http.MethodPut, target: "/?component=bpf&level=debug",
			wantCode: http.StatusNotFound, wantBody: `"bpf"`,
		},
		{
			name: "bad level", method: http.MethodPut, target: "/?component=flows&level=trace",
			wantCode: http.StatusBadRequest, wantBody: `"trace"`,
		},
		{
			name: "missing level", method: http.MethodPost, target: "/?component=flows",
			wantCode: http.StatusBadRequest, wantBody: "required",
		},
		{
			name: "delete", method: http.MethodDelete, target: "/", wantCode: http.StatusMethodNotAllowed,
			wantBody: "method not allowed",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := observe.NewLogLevels(slog.LevelInfo, "flows", "policy")
			var body *strings.Reader
			if tc.form != nil {
				body = strings.NewReader(tc.form.Encode())
			} else {
				body = strings.NewReader("")
			}
			req := httptest.NewRequestWithContext(t.Context(), tc.method, tc.target, body)
			if tc.form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			l.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d; body %q", rec.Code, tc.wantCode, rec.Body.String())
			}
			if tc.wantLevels == nil {
				if !strings.Contains(rec.Body.String(), tc.wantBody) {
					t.Errorf("body %q does not contain %s", rec.Body.String(), tc.wantBody)
				}
				if tc.wantCode == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
					t.Error("405 without an Allow header")
				}
				if diff := cmp.Diff(map[string]slog.Level{"flows": slog.LevelInfo, "policy": slog.LevelInfo}, l.Levels()); diff != "" {
					t.Errorf("a failed request changed levels (-want +got):\n%s", diff)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if diff := cmp.Diff(tc.wantLevels, got); diff != "" {
				t.Errorf("levels (-want +got):\n%s", diff)
			}
		})
	}
}
