package slicer

import (
	"sync/atomic"
	"time"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// Queue names, as in Cilium's ces_queueing_delay_seconds{queue} label.
const (
	queueFast     = "fast"
	queueStandard = "standard"
)

// fairQueue is the ordering underneath the controller's client-go workqueue: two FIFOs, priority
// ("fast") and standard, served by weighted fair share. While both hold work, weight priority
// items are served for each standard one, so a flood in priority namespaces slows the others
// down but never starves them (Cilium's operator always drains its fast queue first). The
// workqueue calls it under its own lock; the depth counters may be read concurrently.
type fairQueue struct {
	classify func(slice string) bool // true: priority
	weight   int
	clock    clock.PassiveClock
	metrics  Metrics

	fast, std   []queued
	servedFast  int
	fastLen     atomic.Int64
	standardLen atomic.Int64
}

type queued struct {
	key   string
	since time.Time
}

var _ workqueue.Queue[string] = (*fairQueue)(nil)

func (q *fairQueue) Touch(string) {}

func (q *fairQueue) Push(key string) {
	item := queued{key: key, since: q.clock.Now()}
	if q.classify(key) {
		q.fast = append(q.fast, item)
		q.fastLen.Add(1)
		return
	}
	q.std = append(q.std, item)
	q.standardLen.Add(1)
}

func (q *fairQueue) Len() int { return len(q.fast) + len(q.std) }

func (q *fairQueue) Pop() string {
	takeFast := len(q.fast) > 0 && (len(q.std) == 0 || q.servedFast < q.weight)
	var item queued
	name := queueStandard
	if takeFast {
		item, q.fast = q.fast[0], q.fast[1:]
		q.fastLen.Add(-1)
		q.servedFast++
		name = queueFast
	} else {
		item, q.std = q.std[0], q.std[1:]
		q.standardLen.Add(-1)
		q.servedFast = 0
	}
	q.metrics.QueueingDelay(name, q.clock.Since(item.since))
	return item.key
}
