package azure

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
)

// ErrCorruptResumeToken is returned (wrapped) by a [ResumeStore]'s Load when a stored token
// cannot be read back. The [Applier] then discards the token and applies the step afresh.
var ErrCorruptResumeToken = errors.New("corrupt resume token")

// ResumeStore persists the resume tokens of long-running operations an [Applier] started, so
// that an interrupted apply (a crash, a cancelled context, a lost connection) resumes polling
// the operation instead of sending its request again. Keys are derived from the plan step;
// tokens are the SDK's opaque [runtime.Poller.ResumeToken] strings. They name the operation's
// status URL and hold no credentials.
//
// Implementations must be safe for concurrent use.
//
// [runtime.Poller.ResumeToken]: https://pkg.go.dev/github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime#Poller.ResumeToken
type ResumeStore interface {
	// Load returns the token stored under key; ok is false when there is none.
	Load(key string) (token string, ok bool, err error)
	// Save stores token under key, replacing any previous one.
	Save(key, token string) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(key string) error
}

// MemoryResumeStore is a [ResumeStore] in memory: it survives a cancelled Apply within one
// process, not a restart. Its zero value is ready to use; it is safe for concurrent use.
type MemoryResumeStore struct {
	mu     sync.Mutex
	tokens map[string]string
}

// Load implements [ResumeStore].
func (s *MemoryResumeStore) Load(key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[key]
	return t, ok, nil
}

// Save implements [ResumeStore].
func (s *MemoryResumeStore) Save(key, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = make(map[string]string)
	}
	s.tokens[key] = token
	return nil
}

// Delete implements [ResumeStore].
func (s *MemoryResumeStore) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, key)
	return nil
}

// Len returns how many tokens are stored.
func (s *MemoryResumeStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}

// FileResumeStore is a [ResumeStore] keeping one file per key in the directory it names:
// FileResumeStore("/var/lib/ceskit/resume"). The directory is created (mode 0700) on the first
// Save; files are written atomically (temporary file, fsync, rename) with mode 0600, so a crash
// leaves either the old token or the new one, never half of one. A file that cannot be parsed
// makes Load return an error wrapping [ErrCorruptResumeToken].
//
// Keys must be 1–128 characters of [A-Za-z0-9_-] (the [Applier]'s keys are hex digests).
// FileResumeStore is safe for concurrent use, also by several processes sharing the directory.
type FileResumeStore string

var resumeKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// resumeFile is the on-disk form of one token.
type resumeFile struct {
	Key   string `json:"key"`
	Token string `json:"token"`
}

func (s FileResumeStore) path(key string) (string, error) {
	if s == "" {
		return "", errors.New("resume store: directory is empty")
	}
	if !resumeKeyPattern.MatchString(key) {
		return "", fmt.Errorf("resume store: invalid key %q: want 1-128 characters of [A-Za-z0-9_-]", key)
	}
	return filepath.Join(string(s), key+".json"), nil
}

// Load implements [ResumeStore].
func (s FileResumeStore) Load(key string) (string, bool, error) {
	p, err := s.path(key)
	if err != nil {
		return "", false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("load resume token: %w", err)
	}
	var f resumeFile
	if err := json.Unmarshal(b, &f); err != nil {
		return "", false, fmt.Errorf("load resume token %s: %w: %v", p, ErrCorruptResumeToken, err)
	}
	if f.Key != key || f.Token == "" {
		return "", false, fmt.Errorf("load resume token %s: %w: key %q, token of %d bytes", p, ErrCorruptResumeToken, f.Key, len(f.Token))
	}
	return f.Token, true, nil
}

// Save implements [ResumeStore].
func (s FileResumeStore) Save(key, token string) (err error) {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if token == "" {
		return errors.New("resume store: empty token")
	}
	b, err := json.Marshal(resumeFile{Key: key, Token: token})
	if err != nil {
		return fmt.Errorf("save resume token: %w", err)
	}
	dir := string(s)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save resume token: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+key+"-*.tmp")
	if err != nil {
		return fmt.Errorf("save resume token: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("save resume token: %w", err)
	}
	if _, err = tmp.Write(b); err != nil {
		return fmt.Errorf("save resume token: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("save resume token: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("save resume token: %w", err)
	}
	if err = os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("save resume token: %w", err)
	}
	// Make the rename durable; not every platform can sync a directory, so this is best effort.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Delete implements [ResumeStore].
func (s FileResumeStore) Delete(key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete resume token: %w", err)
	}
	return nil
}
