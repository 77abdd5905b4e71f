package mcpregistry

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

// ExportFormat identifies the JSON document written by Export.
const ExportFormat = "caddymcp-registry-export"

// ExportVersion is the version of the export document.
const ExportVersion = 1

// MaxImportBytes bounds the size of an import document.
const MaxImportBytes int64 = 64 << 20

// Export is the JSON document of a whole registry store. Credentials are exported as
// stored: sealed (AES-256-GCM under the registry's encryption key, bound to the server
// name), base64 in JSON. They are never decrypted by an export, so an export is only
// useful for credentials to a registry that has the same encryption_key (or lists it in
// previous_encryption_keys); it still must be guarded like a backup.
type Export struct {
	Format     string                `json:"format"`
	Version    int                   `json:"version"`
	ExportedAt time.Time             `json:"exported_at"`
	Servers    []*model.Server       `json:"servers"`
	Status     []*model.ServerHealth `json:"status,omitempty"`
	Tombstones []*model.Tombstone    `json:"tombstones,omitempty"`
	// Credentials maps server names to their sealed credential (base64 in JSON).
	Credentials map[string][]byte `json:"credentials,omitempty"`
}

// ImportMode says how Import treats what the store already holds.
type ImportMode string

const (
	// ImportMerge upserts the imported records and leaves the others alone.
	ImportMerge ImportMode = "merge"
	// ImportReplace makes the store hold exactly the imported records.
	ImportReplace ImportMode = "replace"
)

// ImportResult counts what an import wrote.
type ImportResult struct {
	Mode        ImportMode `json:"mode"`
	Servers     int        `json:"servers"`
	Status      int        `json:"status"`
	Tombstones  int        `json:"tombstones"`
	Credentials int        `json:"credentials"`
	Removed     int        `json:"removed"`
}

// ExportStore writes the whole store as one JSON Export, read in one transaction.
func ExportStore(store Store, w io.Writer) error {
	doc := &Export{Format: ExportFormat, Version: ExportVersion, ExportedAt: time.Now().UTC(), Credentials: map[string][]byte{}}
	err := store.View(func(tx StoreTx) error {
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
		return nil
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

// decodeExport reads and validates an export document of at most MaxImportBytes.
func decodeExport(r io.Reader) (*Export, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading import: %v", err)
	}
	if int64(len(data)) > MaxImportBytes {
		return nil, fmt.Errorf("import is larger than %d bytes", MaxImportBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	doc := new(Export)
	if err := dec.Decode(doc); err != nil {
		return nil, fmt.Errorf("decoding import: %v", err)
	}
	if doc.Format != ExportFormat {
		return nil, fmt.Errorf("import format %q is not %q", doc.Format, ExportFormat)
	}
	if doc.Version != ExportVersion {
		return nil, fmt.Errorf("import version %d is not supported (%d)", doc.Version, ExportVersion)
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
	if err := checkUniquePaths(doc.Servers); err != nil {
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

// ImportStore validates the document read from r, then writes it into store in one
// transaction: any invalid record fails the whole import (the error names it) and
// nothing is written. check, when not nil, is called inside the transaction before
// commit with the resulting servers and credentials (the App checks that it can open
// every credential).
//
// Revisions stay monotonic: an imported record or tombstone whose revision is not
// above the stored one of the same name (record or tombstone) gets the stored revision
// plus one, unless the stored record is identical (then it is left alone).
func ImportStore(store Store, r io.Reader, mode ImportMode, check func(tx StoreTx) error) (*ImportResult, error) {
	if mode == "" {
		mode = ImportMerge
	}
	if mode != ImportMerge && mode != ImportReplace {
		return nil, fmt.Errorf("import mode %q is not one of merge, replace", mode)
	}
	doc, err := decodeExport(r)
	if err != nil {
		return nil, err
	}
	res := &ImportResult{Mode: mode}
	err = store.Update(func(tx StoreTx) error {
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
		if mode == ImportReplace {
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
				if mode == ImportMerge {
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
		if mode == ImportReplace {
			// Imported servers without a credential in the document have none.
			for _, s := range doc.Servers {
				if _, ok := doc.Credentials[s.Name]; !ok {
					if err := tx.DeleteCredential(s.Name); err != nil {
						return err
					}
				}
			}
		}
		all, err := tx.List()
		if err != nil {
			return err
		}
		if err := checkUniquePaths(all); err != nil {
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
