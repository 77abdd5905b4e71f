package mcpregistry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/v01"
)

// ServerJSONOrigin is the origin prefix of records posted as server.json documents.
const ServerJSONOrigin = "server.json"

// MaxServerJSONBytes bounds one admin import of server.json documents.
const MaxServerJSONBytes = 4 << 20

// ImportSkip names an entry an import or sync did not apply, and why.
type ImportSkip struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// ImportResult counts what an import of server.json documents or a sync did.
type ImportResult struct {
	From      string       `json:"from,omitempty"`
	Created   int          `json:"created"`
	Updated   int          `json:"updated"`
	Deleted   int          `json:"deleted"`
	Unchanged int          `json:"unchanged"`
	Skipped   int          `json:"skipped"`
	Skips     []ImportSkip `json:"skips,omitempty"`
	Warnings  []string     `json:"warnings,omitempty"`
	Pages     int          `json:"pages,omitempty"`
	// Error is set when a sync stopped early (the pages before it were applied).
	Error string `json:"error,omitempty"`
}

func (r *ImportResult) skip(name, reason string) {
	r.Skipped++
	if len(r.Skips) < 1000 { // bounded: a sync of a large registry skips many packages-only servers
		r.Skips = append(r.Skips, ImportSkip{Name: name, Reason: reason})
	}
}

func (r *ImportResult) warn(msg string) {
	if len(r.Warnings) < 1000 {
		r.Warnings = append(r.Warnings, msg)
	}
}

// applyImported creates s (a record mapped by v01.ToServer) or updates the record of
// the same name when it has the same origin: only the fields the source owns
// (upstream, transport, description) change; path, enabled, tags and the backend
// settings an operator may have set are kept. A name held by any other record is
// skipped with the reason.
func (a *App) applyImported(ctx context.Context, s *model.Server, headers []string, res *ImportResult) error {
	official := s.Origin[strings.LastIndexByte(s.Origin, '#')+1:]
	if len(headers) > 0 {
		msg := fmt.Sprintf("server %q (%s): the upstream expects header(s) %s from its client, which the gateway does not send; add them as a backend credential or backend headers",
			s.Name, official, strings.Join(headers, ", "))
		res.warn(msg)
		a.logger.Warn("imported server needs client headers", zap.String("server", s.Name),
			zap.String("origin", s.Origin), zap.Strings("headers", headers))
	}
	checkUpstream := func() bool {
		// A remote registry's data is not trusted: its upstreams obey the same rules as
		// any runtime registration (no cloud metadata, no admin endpoint, …).
		if a.RuntimeUpstreams == nil {
			return true
		}
		if err := a.CheckRuntimeUpstream(ctx, s.Upstream); err != nil {
			res.skip(official, err.Error())
			return false
		}
		return true
	}
	cur := a.Server(s.Name)
	if cur == nil {
		if !checkUpstream() {
			return nil
		}
		_, err := a.Put(ctx, s, 0)
		return a.countWrite(err, official, &res.Created, res)
	}
	if cur.Origin != s.Origin {
		if cur.Origin == "" {
			res.skip(official, fmt.Sprintf("name %q is taken by a record that was not imported", s.Name))
		} else {
			res.skip(official, fmt.Sprintf("name %q is taken by a record imported from %s", s.Name, cur.Origin))
		}
		return nil
	}
	next := cloneServer(cur)
	next.Upstream, next.Transport, next.Description = s.Upstream, s.Transport, s.Description
	if model.SameDefinition(cur, next) {
		res.Unchanged++
		return nil
	}
	if next.Upstream != cur.Upstream && !checkUpstream() {
		return nil
	}
	_, err := a.Put(ctx, next, cur.Revision)
	return a.countWrite(err, official, &res.Updated, res)
}

// removeImported deletes the record name when it came from origin.
func (a *App) removeImported(ctx context.Context, name, origin string, res *ImportResult) error {
	official := origin[strings.LastIndexByte(origin, '#')+1:]
	cur := a.Server(name)
	if cur == nil {
		res.Unchanged++ // already gone
		return nil
	}
	if cur.Origin != origin {
		res.skip(official, fmt.Sprintf("deleted at the source, but %q is not the record imported from it (origin %q); kept", name, cur.Origin))
		return nil
	}
	err := a.Delete(ctx, name, cur.Revision)
	if errors.Is(err, model.ErrNotFound) {
		res.Unchanged++
		return nil
	}
	return a.countWrite(err, official, &res.Deleted, res)
}

// countWrite counts a successful write in n; a rejected one (conflict, validation) is a
// skip; a context or store error is returned.
func (a *App) countWrite(err error, official string, n *int, res *ImportResult) error {
	var fe *model.FieldError
	switch {
	case err == nil:
		*n++
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, model.ErrPathConflict), errors.Is(err, model.ErrRevisionMismatch), errors.As(err, &fe):
		res.skip(official, err.Error())
		return nil
	default:
		return err
	}
}

// ImportServerJSON registers the servers described by body, one server.json document
// or a JSON array of them (origin
// "server.json#<official name>"), prefixing their names with namePrefix. Every document
// is validated first: an unusable one (no name, packages only, no usable remote, a name
// that cannot be mapped) fails the whole import, naming the server and the field, and
// nothing is written. Names held by other records are skipped with the reason.
func (a *App) ImportServerJSON(ctx context.Context, body []byte, namePrefix string) (*ImportResult, error) {
	if !v01.ValidNamePrefix(namePrefix) {
		return nil, &model.FieldError{Field: "name_prefix", Reason: fmt.Sprintf("%q must be characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit", namePrefix)}
	}
	docs, err := v01.ParseDocuments(body)
	if err != nil {
		return nil, err
	}
	type mapped struct {
		s       *model.Server
		headers []string
	}
	var all []mapped
	seen := map[string]string{}
	for i := range docs {
		s, headers, err := v01.ToServer(&docs[i], namePrefix, ServerJSONOrigin)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if other, dup := seen[s.Name]; dup {
			return nil, fmt.Errorf("document %d: server %q maps to name %q like %q", i, docs[i].Name, s.Name, other)
		}
		seen[s.Name] = docs[i].Name
		all = append(all, mapped{s, headers})
	}
	res := &ImportResult{From: ServerJSONOrigin}
	for _, m := range all {
		if err := a.applyImported(ctx, m.s, m.headers, res); err != nil {
			return res, err
		}
	}
	return res, nil
}
