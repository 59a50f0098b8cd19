package slicer_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ceskit/ceskit/slicer"
)

// countingBody counts the bytes a node reads from the API server.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err == nil && resp.Body != nil {
		resp.Body = countingBody{resp.Body, t.n}
	}
	return resp, err
}

// fanoutNode is one simulated node: a Watcher with its own connection, counting its bytes and
// the latency until its handler sees each expected change.
type fanoutNode struct {
	w     *slicer.Watcher
	bytes atomic.Int64
	mu    sync.Mutex
	lat   []time.Duration
	seenK map[string]bool
}

// expectations are the changes the churn makes, shared by every node.
type expectations struct {
	mu   sync.Mutex
	want map[string]fanoutChange
}

type fanoutChange struct {
	id   int64 // 0: deleted
	sent time.Time
}

func (n *fanoutNode) seen(exp *expectations, key string, id int64) {
	exp.mu.Lock()
	c, ok := exp.want[key]
	exp.mu.Unlock()
	if ok && c.id == id {
		n.mu.Lock()
		if !n.seenK[key] {
			n.seenK[key] = true
			n.lat = append(n.lat, time.Since(c.sent))
		}
		n.mu.Unlock()
	}
}

// BenchmarkWatcherFanout runs N node watchers (CESKIT_BENCH_NODES, default 20: what this 2-core
// machine bears next to the API server in CEP mode) over 5,000 endpoints, first on slices and then
// pinned to CiliumEndpoints, under the same 50 changes/s churn, and reports per node the watch
// events and bytes received during the churn, the bytes of the initial sync, and the propagation
// p99 from a change's acknowledgement to a node's handler seeing it.
func BenchmarkWatcherFanout(b *testing.B) {
	b.Run("pods=5000,nodes=500", func(b *testing.B) {
		nodes := 20
		if n, err := strconv.Atoi(os.Getenv("CESKIT_BENCH_NODES")); err == nil && n > 0 {
			nodes = n
		}
		churnFor := 10 * time.Second
		if d, err := time.ParseDuration(os.Getenv("CESKIT_BENCH_CHURN")); err == nil {
			churnFor = d
		}
		e := newEnv(b)
		ctx := context.Background()
		createNodes(b, e.c, 500)
		nss := make([]string, 50)
		for i := range nss {
			nss[i] = e.namespace(fmt.Sprintf("fan-%02d", i), nil)
			e.createCEPs(ctx, nss[i], "p", 100, 10)
		}
		ctl := e.start(slicer.Config{})
		e.converge(ctl, 100)
		for b.Loop() {
			for _, mode := range []struct {
				name   string
				source slicer.Source
			}{{"ces", slicer.SourceSlices}, {"cep", slicer.SourceCiliumEndpoints}} {
				runFanout(b, e, nss, nodes, churnFor, mode.name, mode.source)
			}
		}
		b.ReportMetric(float64(nodes), "nodes")
	})
}

func runFanout(b *testing.B, e *env, nss []string, nodes int, churnFor time.Duration, mode string, source slicer.Source) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exp := &expectations{want: map[string]fanoutChange{}}
	// Each mode its own sequence, identity range and names.
	idBase := int64(5000)
	if source == slicer.SourceCiliumEndpoints {
		idBase = 60000
	}
	ch := newChangeMix(b, e, nss, uint64(idBase), idBase, "f-"+mode)
	total := ch.total()
	fleet := make([]*fanoutNode, nodes)
	var wg sync.WaitGroup
	for i := range fleet {
		n := &fanoutNode{seenK: map[string]bool{}}
		cfg := api(b)
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &n.bytes} }
		c, err := slicer.NewClient(cfg)
		if err != nil {
			b.Fatal(err)
		}
		h := slicer.HandlerFuncs{
			Updated: func(_, ep *slicer.Endpoint) { n.seen(exp, ep.Key(), ep.IdentityID) },
			Deleted: func(ep *slicer.Endpoint) { n.seen(exp, ep.Key(), 0) },
		}
		n.w, err = slicer.NewWatcher(c, h, slicer.WatcherConfig{Source: source})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { _ = n.w.Run(ctx) })
		fleet[i] = n
	}
	defer wg.Wait()
	defer cancel()
	for _, n := range fleet {
		eventually(b, "node watcher synced", func() bool { return n.w.Status().Synced && n.w.Status().Endpoints >= total })
	}
	// The initial list is delivered to the handlers after the sync: wait until it has drained.
	for _, n := range fleet {
		prev := int64(-1)
		for cur := n.w.Status().SourceEvents; cur != prev; cur = n.w.Status().SourceEvents {
			prev = cur
			time.Sleep(300 * time.Millisecond)
		}
	}
	syncBytes, events0 := make([]int64, nodes), make([]int64, nodes)
	for i, n := range fleet {
		syncBytes[i], events0[i] = n.bytes.Load(), n.w.Status().SourceEvents
	}

	tick := time.NewTicker(time.Second / 50)
	end := time.Now().Add(churnFor)
	changes := 0
	var sends sync.WaitGroup
	for now := range tick.C {
		if now.After(end) {
			break
		}
		key, id, send := ch.next(ctx, changes)
		changes++
		exp.mu.Lock()
		exp.want[key] = fanoutChange{id: id, sent: time.Now()}
		exp.mu.Unlock()
		sends.Go(func() {
			if err := send(); err != nil {
				b.Error(err)
			}
		})
	}
	tick.Stop()
	sends.Wait()
	// Let every node catch up (bounded), then count.
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range fleet {
		for time.Now().Before(deadline) {
			n.mu.Lock()
			got := len(n.lat)
			n.mu.Unlock()
			if got >= changes*9/10 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second) // DeleteGrace and stragglers
	var lat []time.Duration
	var bytes, events, sync int64
	for i, n := range fleet {
		n.mu.Lock()
		lat = append(lat, n.lat...)
		n.mu.Unlock()
		bytes += n.bytes.Load() - syncBytes[i]
		events += n.w.Status().SourceEvents - events0[i]
		sync += syncBytes[i]
	}
	slices.Sort(lat)
	// Which kinds of change did the first node miss?
	missed := map[string]int{}
	fleet[0].mu.Lock()
	exp.mu.Lock()
	for key, c := range exp.want {
		if !fleet[0].seenK[key] {
			switch c.id {
			case 0:
				missed["delete"]++
			case 1001:
				missed["create"]++
			default:
				missed["identity"]++
			}
		}
	}
	exp.mu.Unlock()
	fleet[0].mu.Unlock()
	b.Logf("%s: %d changes on %d keys; node 0 missed %v", mode, changes, len(exp.want), missed)
	per := float64(nodes)
	b.ReportMetric(float64(events)/per, mode+"-events/node")
	b.ReportMetric(float64(bytes)/per/1024, mode+"-churn-KB/node")
	b.ReportMetric(float64(sync)/per/1024, mode+"-sync-KB/node")
	b.ReportMetric(pct(lat, 0.99), mode+"-e2e-p99-ms")
	b.ReportMetric(float64(len(lat))/per/float64(len(exp.want)), mode+"-seen/change")
}
