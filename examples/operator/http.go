package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ceskit/ceskit/slicer"
)

// controller is what the HTTP API needs of a *slicer.Controller.
type controller interface {
	HasSynced() bool
	Status() slicer.Status
	Diff() []slicer.SliceDiff
	Resync(ctx context.Context, namespace string) (int, error)
}

// state is what the HTTP API needs of the replica (*operator).
type state interface {
	// controller is the running controller, or nil when this replica stands by.
	controller() controller
	// health is nil while the process is alive and not wedged.
	health() error
	// ready is nil, with a note, while the replica does its part: writers synced, or standing by.
	ready() (string, error)
	replica() replicaStatus
}

// Replica modes in /status.
const (
	modeSingle  = "single"          // one replica, writers always on (--leader-elect=false)
	modeElected = "leader-election" // writers on while this replica holds the Lease
	modeShadow  = "shadow"          // writes nothing, needs no leader
)

// replicaStatus is this replica's part of /status.
type replicaStatus struct {
	// Identity is this replica's election identity: host name and a random suffix.
	Identity string `json:"identity"`
	// Mode is "single", "leader-election" or "shadow".
	Mode string `json:"mode"`
	// Leading is true while this replica runs the writers.
	Leading bool `json:"leading"`
	// Leader is the holder of the election Lease as last observed, with leader election.
	Leader string `json:"leader,omitempty"`
	// Lease is the election Lease, "namespace/name", with leader election.
	Lease string `json:"lease,omitempty"`
	// IdentityGC is true when the identity collector runs with the writers.
	IdentityGC bool `json:"identityGC"`
}

// statusResponse is /status: the replica, and the controller's status while it runs.
type statusResponse struct {
	Replica replicaStatus `json:"replica"`
	*slicer.Status
}

// newMux serves what --listen serves (see the package comment): metrics and probes, nothing that
// changes state or shows endpoint names, so that it may listen beyond loopback for the kubelet
// and Prometheus.
func newMux(s state, reg *prometheus.Registry, logger *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		Registry: reg,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.health(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		note, err := s.ready()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if note != "" {
			note = ": " + note
		}
		fmt.Fprintln(w, "ok"+note)
	})
	return mux
}

// newAdminMux serves what --admin-listen serves (see the package comment): the replica's status,
// the shadow diff (slice and endpoint names) and the manual resync, a write to every slice that
// differs. It has no authentication: its listener stays on loopback unless the operator chooses
// otherwise.
func newAdminMux(s state, logger *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		resp := statusResponse{Replica: s.replica()}
		if c := s.controller(); c != nil {
			st := c.Status()
			resp.Status = &st
		}
		writeJSON(w, http.StatusOK, resp, logger)
	})
	// withController answers 503 on a replica that stands by.
	withController := func(h func(http.ResponseWriter, *http.Request, controller)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			c := s.controller()
			if c == nil {
				r := s.replica()
				http.Error(w, fmt.Sprintf("no controller runs in this replica (%s, leader %q): ask the leader", r.Identity, r.Leader), http.StatusServiceUnavailable)
				return
			}
			h(w, r, c)
		}
	}
	mux.HandleFunc("GET /diff", withController(func(w http.ResponseWriter, _ *http.Request, c controller) {
		writeJSON(w, http.StatusOK, c.Diff(), logger)
	}))
	mux.HandleFunc("POST /resync", withController(func(w http.ResponseWriter, r *http.Request, c controller) {
		ns := r.URL.Query().Get("namespace")
		n, err := c.Resync(r.Context(), ns)
		switch {
		case errors.Is(err, slicer.ErrNotSynced):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		logger.Info("manual resync", "namespace", ns, "trigger", "http", "repaired", n)
		writeJSON(w, http.StatusOK, struct {
			Namespace string `json:"namespace"`
			OutOfSync int    `json:"outOfSync"`
		}{ns, n}, logger)
	}))
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any, logger *slog.Logger) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		logger.Error("encode response", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
