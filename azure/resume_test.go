package azure

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testStore runs the behaviour every ResumeStore shares.
func testStore(t *testing.T, s ResumeStore) {
	t.Helper()
	const key = "0123abcd"
	if tok, ok, err := s.Load(key); ok || err != nil || tok != "" {
		t.Fatalf("Load(absent) = %q, %v, %v", tok, ok, err)
	}
	if err := s.Save(key, `{"type":"x","token":"one"}`); err != nil {
		t.Fatal(err)
	}
	if tok, ok, err := s.Load(key); !ok || err != nil || tok != `{"type":"x","token":"one"}` {
		t.Fatalf("Load = %q, %v, %v", tok, ok, err)
	}
	if err := s.Save(key, "two"); err != nil {
		t.Fatal(err)
	}
	if tok, _, _ := s.Load(key); tok != "two" {
		t.Fatalf("Load after overwrite = %q, want two", tok)
	}
	if err := s.Delete(key); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(key); ok || err != nil {
		t.Fatalf("Load after Delete = %v, %v", ok, err)
	}
	if err := s.Delete(key); err != nil {
		t.Fatalf("Delete(absent) = %v", err)
	}

	// Concurrent use.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := fmt.Sprintf("key-%d", i)
			for j := range 20 {
				if err := s.Save(k, fmt.Sprint(j)); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := s.Load(k); err != nil {
					t.Error(err)
					return
				}
			}
			if err := s.Delete(k); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestMemoryResumeStore(t *testing.T) {
	var s MemoryResumeStore // the zero value is ready
	testStore(t, &s)
	if s.Len() != 0 {
		t.Errorf("Len = %d after deleting everything", s.Len())
	}
}

func TestFileResumeStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "resume")
	s := FileResumeStore(dir)
	testStore(t, s)

	if err := s.Save("k1", "token"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode %v, want 0700", perm)
	}
	st, err = os.Stat(filepath.Join(dir, "k1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %v, want 0600", perm)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only k1.json (no temporary files)", names)
	}
	// Another store on the same directory (a restarted process) sees the token.
	if tok, ok, err := FileResumeStore(dir).Load("k1"); !ok || err != nil || tok != "token" {
		t.Errorf("Load from a new store = %q, %v, %v", tok, ok, err)
	}
}

func TestFileResumeStoreCorrupt(t *testing.T) {
	tests := map[string]string{
		"garbage":     "\x00\x01not json",
		"truncated":   `{"key":"k1","token":"abc`,
		"empty":       "",
		"wrong key":   `{"key":"other","token":"abc"}`,
		"empty token": `{"key":"k1","token":""}`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "k1.json")
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s := FileResumeStore(dir)
			tok, ok, err := s.Load("k1")
			if !errors.Is(err, ErrCorruptResumeToken) || ok || tok != "" {
				t.Fatalf("Load = %q, %v, %v; want ErrCorruptResumeToken", tok, ok, err)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
			// Deleting and saving again recovers.
			if err := s.Delete("k1"); err != nil {
				t.Fatal(err)
			}
			if err := s.Save("k1", "fresh"); err != nil {
				t.Fatal(err)
			}
			if tok, ok, err := s.Load("k1"); !ok || err != nil || tok != "fresh" {
				t.Errorf("Load after recovery = %q, %v, %v", tok, ok, err)
			}
		})
	}
}

func TestFileResumeStoreInvalid(t *testing.T) {
	s := FileResumeStore(t.TempDir())
	for _, key := range []string{"", "../escape", "a/b", "a.b", strings.Repeat("k", 129)} {
		if err := s.Save(key, "t"); err == nil {
			t.Errorf("Save(%q) accepted", key)
		}
		if _, _, err := s.Load(key); err == nil {
			t.Errorf("Load(%q) accepted", key)
		}
		if err := s.Delete(key); err == nil {
			t.Errorf("Delete(%q) accepted", key)
		}
	}
	if err := s.Save("k", ""); err == nil {
		t.Error("empty token accepted")
	}
	if err := FileResumeStore("").Save("k", "t"); err == nil {
		t.Error("empty directory accepted")
	}
	// A directory that cannot be created.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := FileResumeStore(filepath.Join(file, "sub")).Save("k", "t"); err == nil {
		t.Error("Save under a regular file succeeded")
	}
}
