package mcpregistry

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxKeyFileSize bounds what is read from encryption_key_file: a key is 44 bytes.
const maxKeyFileSize = 4 << 10

// loadOrCreateKeyFile returns the key held in path, writing a new random one (base64,
// mode 0600) when the file does not exist. The new file appears whole or not at all
// (written aside, then linked into place), so instances starting together on one
// directory agree on one key.
func loadOrCreateKeyFile(path string) (key string, created bool, err error) {
	if b, err := readKeyFile(path); err == nil {
		return b, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("encryption_key_file: creating %s: %v", dir, err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	tmp, err := os.CreateTemp(dir, ".encryption-key-*")
	if err != nil {
		return "", false, fmt.Errorf("encryption_key_file: %v", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("encryption_key_file: %v", err)
	}
	_, werr := tmp.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
	serr := tmp.Sync()
	if err := errors.Join(werr, serr, tmp.Close()); err != nil {
		return "", false, fmt.Errorf("encryption_key_file: writing %s: %v", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) { // another instance was first: use its key
			b, err := readKeyFile(path)
			return b, false, err
		}
		return "", false, fmt.Errorf("encryption_key_file: %v", err)
	}
	b, err := readKeyFile(path)
	return b, err == nil, err
}

func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return "", fmt.Errorf("encryption_key_file %s: %v", path, err)
	}
	if n := len(b); n > maxKeyFileSize {
		return "", fmt.Errorf("encryption_key_file %s is larger than %d bytes: it is not a key", path, maxKeyFileSize)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("encryption_key_file %s is empty: restore the key, or remove the file only if nothing was ever sealed with it", path)
	}
	return key, nil
}
