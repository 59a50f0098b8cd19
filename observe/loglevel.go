package observe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Errors of [LogLevels].
var (
	// ErrUnknownComponent is returned when setting the level of a component LogLevels does not
	// know.
	ErrUnknownComponent = errors.New("unknown log component")
	// ErrInvalidLevel is returned for a level that is not debug, info, warn or error (with an
	// optional +n or -n, as slog spells levels).
	ErrInvalidLevel = errors.New("invalid log level")
)

// LogLevels holds one log level per named component ("slicer", "identity", "policy",
// "datapath", "flows", …) that operators can change while the program runs (FR1.3): turn on
// debug logging of the policy engine alone, or the flow log's FORWARDED verdicts, without a
// restart. Each component's level is a *slog.LevelVar; [LogLevels.Handler] wraps a program's
// handler so a component logs through it at that level, [LogLevels.Set] changes a level, and
// LogLevels is an http.Handler that lists and changes them.
//
// A LogLevels is safe for concurrent use. Build it with [NewLogLevels]; the zero value is not
// usable.
type LogLevels struct {
	def    slog.Level
	mu     sync.RWMutex
	levels map[string]*slog.LevelVar
}

// NewLogLevels returns a LogLevels whose components start at def. The components are named up
// front so operators can see and set them before anything logs; [LogLevels.Handler] adds any
// other component it is asked for, also at def.
func NewLogLevels(def slog.Level, components ...string) *LogLevels {
	l := &LogLevels{def: def, levels: make(map[string]*slog.LevelVar, len(components))}
	for _, c := range components {
		l.levelVar(c)
	}
	return l
}

// levelVar returns component's level, adding the component at the default level if new.
func (l *LogLevels) levelVar(component string) *slog.LevelVar {
	l.mu.RLock()
	v, ok := l.levels[component]
	l.mu.RUnlock()
	if ok {
		return v
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.levels[component]; ok {
		return v
	}
	v = new(slog.LevelVar)
	v.Set(l.def)
	l.levels[component] = v
	return v
}

// Handler returns a handler for component that passes the records at or above the component's
// current level to base, with the attribute component=<name> added. The component is added at
// the default level when new; later changes by [LogLevels.Set] take effect at once on every
// handler and logger derived from it.
//
// The component's level replaces base's own minimum level: Handler calls base's Handle for
// every record at or above the component level without asking base's Enabled, so a base built
// with slog.HandlerOptions{Level: slog.LevelInfo} still writes a component's Debug records once
// the component is set to debug. Handlers that filter on more than the level (sampling, …)
// should therefore wrap the returned handler rather than be wrapped by it.
func (l *LogLevels) Handler(component string, base slog.Handler) slog.Handler {
	return &componentHandler{
		level: l.levelVar(component),
		base:  base.WithAttrs([]slog.Attr{slog.String("component", component)}),
	}
}

// Logger returns slog.New(l.Handler(component, base)).
func (l *LogLevels) Logger(component string, base slog.Handler) *slog.Logger {
	return slog.New(l.Handler(component, base))
}

// Set changes component's level to level, one of "debug", "info", "warn" or "error" in any
// case, optionally with an offset ("debug-4", "info+2"), as [slog.Level] parses them. An unknown
// component returns an error wrapping [ErrUnknownComponent], a bad level one wrapping
// [ErrInvalidLevel]; both name the value and change nothing.
func (l *LogLevels) Set(component, level string) error {
	lv, err := ParseLevel(level)
	if err != nil {
		return fmt.Errorf("set log level of %q: %w", component, err)
	}
	return l.SetLevel(component, lv)
}

// SetLevel changes component's level. An unknown component returns an error wrapping
// [ErrUnknownComponent] that names it and the known ones, and changes nothing.
func (l *LogLevels) SetLevel(component string, level slog.Level) error {
	l.mu.RLock()
	v, ok := l.levels[component]
	l.mu.RUnlock()
	if !ok {
		return fmt.Errorf("set log level of %q: %w (known: %s)", component, ErrUnknownComponent,
			strings.Join(l.components(), ", "))
	}
	v.Set(level)
	return nil
}

// Level returns component's current level; ok is false when the component is unknown.
func (l *LogLevels) Level(component string) (level slog.Level, ok bool) {
	l.mu.RLock()
	v, ok := l.levels[component]
	l.mu.RUnlock()
	if !ok {
		return 0, false
	}
	return v.Level(), true
}

// Levels returns every component's current level.
func (l *LogLevels) Levels() map[string]slog.Level {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make(map[string]slog.Level, len(l.levels))
	for c, v := range l.levels {
		out[c] = v.Level()
	}
	return out
}

// components returns the component names, sorted.
func (l *LogLevels) components() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Sorted(maps.Keys(l.levels))
}

// ParseLevel parses "debug", "info", "warn" or "error" in any case, optionally with an offset
// ("debug-4", "INFO+2"), as slog.Level's UnmarshalText does; anything else returns an error
// wrapping [ErrInvalidLevel] that names the value.
func ParseLevel(s string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w %q: want debug, info, warn or error", ErrInvalidLevel, s)
	}
	return lv, nil
}

// ServeHTTP lets operators read and change the levels:
//
//	GET                                  200, {"component":"LEVEL",…} as JSON (levels as slog spells them: "DEBUG", "INFO", "WARN", "ERROR", "INFO+2")
//	PUT or POST ?component=x&level=debug 200 and the levels after the change; 400 for a missing
//	                                     or bad value, 404 for an unknown component
//
// component and level may also come as form fields of the body. Any other method gets 405.
// Mount it behind the same authentication as the program's other admin endpoints: it changes
// how much the program logs.
func (l *LogLevels) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPut, http.MethodPost:
		component, level := r.FormValue("component"), r.FormValue("level")
		if component == "" || level == "" {
			http.Error(w, "component and level are required", http.StatusBadRequest)
			return
		}
		if err := l.Set(component, level); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, ErrUnknownComponent) {
				code = http.StatusNotFound
			}
			http.Error(w, err.Error(), code)
			return
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	levels := l.Levels()
	out := make(map[string]string, len(levels))
	for c, lv := range levels {
		out[c] = lv.String()
	}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// componentHandler filters by a component's level and hands the rest to base.
type componentHandler struct {
	level *slog.LevelVar
	base  slog.Handler
}

func (h *componentHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

func (h *componentHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.base.Handle(ctx, r)
}

func (h *componentHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &componentHandler{level: h.level, base: h.base.WithAttrs(attrs)}
}

func (h *componentHandler) WithGroup(name string) slog.Handler {
	return &componentHandler{level: h.level, base: h.base.WithGroup(name)}
}
