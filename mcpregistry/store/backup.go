package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// BackupFormat identifies the JSON document written by WriteBackup. The value is what
// every backup written so far carries, so it cannot change without making them
// unreadable.
const BackupFormat = "caddymcp-registry-export"

// BackupVersion is the version of the backup document.
const BackupVersion = 1

// MaxBackupBytes bounds the size of a backup document that RestoreBackup reads.
const MaxBackupBytes int64 = 64 << 20

// Backup is the JSON document of a whole registry store. Credentials are written as
// stored: sealed (AES-256-GCM under the registry's encryption key, bound to the server
// name), base64 in JSON. They are never decrypted by a backup, so a backup restores
// credentials only into a registry that has the same encryption_key (or lists it in
// previous_encryption_keys); it still must be guarded like a secret.
type Backup struct {
	Format     string                `json:"format"`
	Version    int                   `json:"version"`
	ExportedAt time.Time             `json:"exported_at"`
	Servers    []*model.Server       `json:"servers"`
	Status     []*model.ServerHealth `json:"status,omitempty"`
	Tombstones []*model.Tombstone    `json:"tombstones,omitempty"`
	// Credentials maps server names to their sealed credential (base64 in JSON).
	Credentials map[string][]byte `json:"credentials,omitempty"`
	// Collections holds every Collection: namespace → key → value (base64 in JSON).
	Collections map[string]map[string][]byte `json:"collections,omitempty"`
}

// RestoreMode says how RestoreBackup treats what the store already holds.
type RestoreMode string

const (
	// RestoreMerge upserts the backup's records and leaves the others alone.
	RestoreMerge RestoreMode = "merge"
	// RestoreReplace makes the store hold exactly the backup's records.
	RestoreReplace RestoreMode = "replace"
)

// RestoreResult counts what a restore wrote.
type RestoreResult struct {
	Mode        RestoreMode `json:"mode"`
	Servers     int         `json:"servers"`
	Status      int         `json:"status"`
	Tombstones  int         `json:"tombstones"`
	Credentials int         `json:"credentials"`
	Removed     int         `json:"removed"`
	// Records counts the Collection records written.
	Records int `json:"records,omitempty"`
}

// WriteBackup writes the whole store as one JSON Backup, read in one transaction.
func WriteBackup(st Store, w io.Writer) error {
	doc := &Backup{Format: BackupFormat, Version: BackupVersion, ExportedAt: time.Now().UTC(), Credentials: map[string][]byte{}}
	err := st.View(func(tx Tx) error {
		var err error
		if doc.Servers, err = tx.List(); err != nil {
			return err
		}
		if doc.Status, err = tx.ListStatus(); err != nil {
			return err
		}
		if doc.Tombstones, err = tx.ListTombstones(); err != nil {
			return err
		}
		names, err := tx.ListCredentials()
		if err != nil {
			return err
		}
		for _, n := range names {
			raw, err := tx.GetCredential(n)
			if err != nil {
				return err
			}
			doc.Credentials[n] = raw
		}
		return backupCollections(tx, doc)
	})
	if err != nil {
		return fmt.Errorf("exporting registry: %w", err)
	}
	if doc.Servers == nil {
		doc.Servers = []*model.Server{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// decodeBackup reads and validates a backup document of at most MaxBackupBytes.
func decodeBackup(r io.Reader) (*Backup, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBackupBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading import: %v", err)
	}
	if int64(len(data)) > MaxBackupBytes {
		return nil, fmt.Errorf("backup is larger than %d bytes", MaxBackupBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	doc := new(Backup)
	if err := dec.Decode(doc); err != nil {
		return nil, fmt.Errorf("decoding import: %v", err)
	}
	if doc.Format != BackupFormat {
		return nil, fmt.Errorf("import format %q is not %q", doc.Format, BackupFormat)
	}
	if doc.Version != BackupVersion {
		return nil, fmt.Errorf("import version %d is not supported (%d)", doc.Version, BackupVersion)
	}
	names := map[string]bool{}
	for i, s := range doc.Servers {
		if s == nil {
			return nil, fmt.Errorf("servers[%d]: null", i)
		}
		if err := s.Normalize(); err != nil {
			return nil, fmt.Errorf("servers[%d] (%q): %w", i, s.Name, err)
		}
		if names[s.Name] {
			return nil, fmt.Errorf("servers[%d] (%q): duplicate name", i, s.Name)
		}
		if s.Revision == 0 {
			s.Revision = 1
		}
		names[s.Name] = true
	}
	if err := model.CheckUniquePaths(doc.Servers); err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	tombs := map[string]bool{}
	for i, t := range doc.Tombstones {
		if t == nil || !model.ValidName(t.Name) {
			return nil, fmt.Errorf("tombstones[%d]: invalid server name", i)
		}
		if names[t.Name] || tombs[t.Name] {
			return nil, fmt.Errorf("tombstones[%d] (%q): the name is also a server or another tombstone", i, t.Name)
		}
		tombs[t.Name] = true
	}
	for i, h := range doc.Status {
		if h == nil || !names[h.Server] {
			return nil, fmt.Errorf("status[%d]: not the status of an imported server", i)
		}
	}
	for ns := range doc.Collections {
		if err := ValidNamespace(ns); err != nil {
			return nil, fmt.Errorf("collections: %w", err)
		}
	}
	for n, c := range doc.Credentials {
		if !names[n] {
			return nil, fmt.Errorf("credentials[%q]: not an imported server", n)
		}
		if len(c) == 0 {
			return nil, fmt.Errorf("credentials[%q]: empty", n)
		}
	}
	return doc, nil
}

// RestoreBackup validates the document read from r, then writes it into st in one
// transaction: any invalid record fails the whole import (the error names it) and
// nothing is written. check, when not nil, is called inside the transaction before
// commit with the resulting servers and credentials (the App checks that it can open
// every credential).
//
// Revisions stay monotonic: an imported record or tombstone whose revision is not
// above the stored one of the same name (record or tombstone) gets the stored revision
// plus one, unless the stored record is identical (then it is left alone).
func RestoreBackup(st Store, r io.Reader, mode RestoreMode, check func(tx Tx) error) (*RestoreResult, error) {
	if mode == "" {
		mode = RestoreMerge
	}
	if mode != RestoreMerge && mode != RestoreReplace {
		return nil, fmt.Errorf("import mode %q is not one of merge, replace", mode)
	}
	doc, err := decodeBackup(r)
	if err != nil {
		return nil, err
	}
	res := &RestoreResult{Mode: mode}
	err = st.Update(func(tx Tx) error {
		current := func(name string) (uint64, *model.Server, error) {
			s, err := tx.Get(name)
			if err == nil {
				return s.Revision, s, nil
			}
			if !errors.Is(err, model.ErrNotFound) {
				return 0, nil, err
			}
			t, err := tx.GetTombstone(name)
			if errors.Is(err, model.ErrNotFound) {
				return 0, nil, nil
			}
			if err != nil {
				return 0, nil, err
			}
			return t.Revision, nil, nil
		}
		imported := map[string]bool{}
		for _, s := range doc.Servers {
			imported[s.Name] = true
		}
		for _, t := range doc.Tombstones {
			imported[t.Name] = true
		}
		if mode == RestoreReplace {
			existing, err := tx.List()
			if err != nil {
				return err
			}
			for _, s := range existing {
				if !imported[s.Name] {
					if err := tx.Purge(s.Name); err != nil {
						return err
					}
					res.Removed++
				}
			}
			tombs, err := tx.ListTombstones()
			if err != nil {
				return err
			}
			for _, t := range tombs {
				if !imported[t.Name] {
					if err := tx.Purge(t.Name); err != nil {
						return err
					}
				}
			}
		}
		for _, s := range doc.Servers {
			rev, prev, err := current(s.Name)
			if err != nil {
				return fmt.Errorf("server %q: %w", s.Name, err)
			}
			if prev != nil && prev.Revision == s.Revision && model.SameDefinition(prev, s) {
				res.Servers++
				continue
			}
			if s.Revision <= rev {
				s.Revision = rev + 1
			}
			if s.CreatedAt.IsZero() {
				s.CreatedAt = time.Now().UTC()
			}
			if s.UpdatedAt.IsZero() {
				s.UpdatedAt = s.CreatedAt
			}
			if err := tx.Restore(s); err != nil {
				return fmt.Errorf("server %q: %w", s.Name, err)
			}
			res.Servers++
		}
		for _, t := range doc.Tombstones {
			rev, prev, err := current(t.Name)
			if err != nil {
				return fmt.Errorf("tombstone %q: %w", t.Name, err)
			}
			if prev != nil {
				if mode == RestoreMerge {
					// A deletion from elsewhere removes our record too.
					if err := tx.Purge(t.Name); err != nil {
						return err
					}
					res.Removed++
				} else if err := tx.Purge(t.Name); err != nil {
					return err
				}
			}
			if t.Revision <= rev {
				t.Revision = rev + 1
			}
			if t.DeletedAt.IsZero() {
				t.DeletedAt = time.Now().UTC()
			}
			if err := tx.RestoreTombstone(t); err != nil {
				return fmt.Errorf("tombstone %q: %w", t.Name, err)
			}
			res.Tombstones++
		}
		for _, h := range doc.Status {
			if err := tx.PutStatus(h); err != nil {
				return fmt.Errorf("status of %q: %w", h.Server, err)
			}
			res.Status++
		}
		credNames := make([]string, 0, len(doc.Credentials))
		for n := range doc.Credentials {
			credNames = append(credNames, n)
		}
		sort.Strings(credNames)
		for _, n := range credNames {
			if err := tx.PutCredential(n, doc.Credentials[n]); err != nil {
				return fmt.Errorf("credential of %q: %w", n, err)
			}
			res.Credentials++
		}
		if mode == RestoreReplace {
			// Imported servers without a credential in the document have none.
			for _, s := range doc.Servers {
				if _, ok := doc.Credentials[s.Name]; !ok {
					if err := tx.DeleteCredential(s.Name); err != nil {
						return err
					}
				}
			}
		}
		n, err := restoreCollections(tx, doc, mode)
		if err != nil {
			return err
		}
		res.Records = n
		all, err := tx.List()
		if err != nil {
			return err
		}
		if err := model.CheckUniquePaths(all); err != nil {
			return err
		}
		if check != nil {
			return check(tx)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("importing registry: %w", err)
	}
	return res, nil
}

// backupCollections copies every Collection of tx into doc.
func backupCollections(tx Tx, doc *Backup) error {
	names, err := tx.Collections()
	if err != nil {
		return err
	}
	for _, ns := range names {
		c, err := tx.Collection(ns)
		if err != nil {
			return err
		}
		records := map[string][]byte{}
		if err := c.ForEach(func(key string, value []byte) error {
			records[key] = bytes.Clone(value)
			return nil
		}); err != nil {
			return fmt.Errorf("collection %s: %w", ns, err)
		}
		if doc.Collections == nil {
			doc.Collections = map[string]map[string][]byte{}
		}
		doc.Collections[ns] = records
	}
	return nil
}

// restoreCollections writes doc's collections into tx; in replace mode it first
// empties every collection tx holds. It returns the number of records written.
func restoreCollections(tx Tx, doc *Backup, mode RestoreMode) (int, error) {
	if mode == RestoreReplace {
		names, err := tx.Collections()
		if err != nil {
			return 0, err
		}
		for _, ns := range names {
			c, err := tx.Collection(ns)
			if err != nil {
				return 0, err
			}
			var keys []string
			if err := c.ForEach(func(key string, _ []byte) error { keys = append(keys, key); return nil }); err != nil {
				return 0, err
			}
			for _, k := range keys {
				if err := c.Delete(k); err != nil {
					return 0, err
				}
			}
		}
	}
	n := 0
	for ns, records := range doc.Collections {
		c, err := tx.Collection(ns)
		if err != nil {
			return 0, err
		}
		for k, v := range records {
			if err := c.Put(k, v); err != nil {
				return 0, fmt.Errorf("collection %s, record %q: %w", ns, k, err)
			}
			n++
		}
	}
	return n, nil
}
