package slicer

// CorruptViewForTest changes the watcher's view behind its back, as a missed event would: it sets
// (or, with ep nil, removes) the entry of key without telling the handler.
func (w *Watcher) CorruptViewForTest(key string, ep *Endpoint) {
	w.vmu.Lock()
	defer w.vmu.Unlock()
	if ep == nil {
		delete(w.view, key)
		return
	}
	w.view[key] = ep
}
