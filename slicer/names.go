package slicer

import "math/rand/v2"

// sliceNameAlphabet is Cilium's: no vowels, no 0, 1 or 3, so names never spell words.
const sliceNameAlphabet = "bcdfghjklmnpqrstvwxyz2456789"

// newSliceName returns a name in Cilium's format, "ces-" + 9 + "-" + 5 characters, e.g.
// ces-2fvynpvzn-4ncg9, that taken does not report as used.
func newSliceName(r *rand.Rand, taken func(string) bool) string {
	for {
		b := []byte("ces-xxxxxxxxx-xxxxx")
		for i := range b {
			if b[i] == 'x' {
				b[i] = sliceNameAlphabet[r.IntN(len(sliceNameAlphabet))]
			}
		}
		if name := string(b); !taken(name) {
			return name
		}
	}
}
