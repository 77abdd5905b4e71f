package mcpregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// Import from the official MCP registry format: server.json documents (posted to the
// admin API) and other registries' v0.1 APIs (sync.go) become records of this registry.
//
// Mapping of a server.json to a Server:
//
//	name         <name prefix> + the part of the official name after the slash, lower-cased,
//	             every character outside a-z 0-9 . _ - replaced by '-', leading
//	             punctuation dropped, at most 63 characters
//	path         = name
//	upstream     the first remotes[] entry of type streamable-http (else the first sse)
//	             whose URL has no {template} variables
//	transport    that remote's type
//	description  the server.json description
//	enabled      true (when created; later imports keep what the operator set)
//	source       api: the record is a runtime record (it survives config reloads and is
//	             managed with the same writes as any API record); Origin tells it apart
//	origin       "<registry base URL>#<official name>" or "server.json#<official name>"
//
// Packages-only servers (npm, pypi, oci… run locally) cannot be proxied and are rejected.
// Headers a remote wants from its client (remotes[].headers) are not sent by the
// gateway: the server is imported and the headers are reported as a warning (an
// operator can add them as backend headers or a backend credential).

// ServerJSONOrigin is the origin prefix of records posted as server.json documents.
const ServerJSONOrigin = "server.json"

// MaxServerJSONBytes bounds one admin import of server.json documents.
const MaxServerJSONBytes = 4 << 20

// v01InServerJSON is the part of an incoming server.json this registry reads.
type v01InServerJSON struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Version     string            `json:"version"`
	Remotes     []v01InRemote     `json:"remotes"`
	Packages    []json.RawMessage `json:"packages"`
}

// v01InRemote is a RemoteTransport of an incoming server.json.
type v01InRemote struct {
	Type      string                     `json:"type"`
	URL       string                     `json:"url"`
	Headers   []v01Header                `json:"headers"`
	Variables map[string]json.RawMessage `json:"variables"`
}

// v01InResponse is a ServerResponse read from another registry.
type v01InResponse struct {
	Server v01InServerJSON `json:"server"`
	Meta   struct {
		Official *struct {
			Status    string `json:"status"`
			UpdatedAt string `json:"updatedAt"`
			IsLatest  *bool  `json:"isLatest"`
		} `json:"io.modelcontextprotocol.registry/official"`
	} `json:"_meta"`
}

// ImportSkip names an entry an import or sync did not apply, and why.
type ImportSkip struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// V01ImportResult counts what an import of server.json documents or a sync did.
type V01ImportResult struct {
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

func (r *V01ImportResult) skip(name, reason string) {
	r.Skipped++
	if len(r.Skips) < 1000 { // bounded: a sync of a large registry skips many packages-only servers
		r.Skips = append(r.Skips, ImportSkip{Name: name, Reason: reason})
	}
}

func (r *V01ImportResult) warn(msg string) {
	if len(r.Warnings) < 1000 {
		r.Warnings = append(r.Warnings, msg)
	}
}

// ImportedName maps an official server name (<namespace>/<server>) to a name of this
// registry: prefix + the server part, lower-cased and cleaned to the name pattern.
func ImportedName(official, prefix string) (string, error) {
	_, part, ok := strings.Cut(official, "/")
	if !ok || part == "" || strings.Contains(part, "/") {
		return "", &model.FieldError{Field: "name", Reason: fmt.Sprintf("%q is not an official server name <namespace>/<server>", official)}
	}
	var b strings.Builder
	for _, c := range strings.ToLower(part) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	name := prefix + strings.TrimLeft(b.String(), "._-")
	if len(name) > 63 {
		name = name[:63]
	}
	if !model.ValidName(name) {
		return "", &model.FieldError{Field: "name", Reason: fmt.Sprintf("%q (from %q with prefix %q) is not a valid server name: 1-63 characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit", name, official, prefix)}
	}
	return name, nil
}

// validNamePrefix reports whether p can start a server name ("" included).
func validNamePrefix(p string) bool {
	return p == "" || model.ValidName(p)
}

// serverFromV01 maps a server.json to a new Server record of the given origin prefix
// ("server.json" or a registry base URL). It returns the headers the chosen remote
// expects from its client (which the gateway cannot send), or an error naming the
// server and the field that makes it unusable.
func serverFromV01(doc *v01InServerJSON, prefix, originBase string) (*model.Server, []string, error) {
	if doc.Name == "" {
		return nil, nil, &model.FieldError{Field: "name", Reason: "required"}
	}
	name, err := ImportedName(doc.Name, prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("server %q: %w", doc.Name, err)
	}
	remote, err := pickRemote(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("server %q: %w", doc.Name, err)
	}
	s := &model.Server{
		Name:        name,
		Path:        name,
		Upstream:    remote.URL,
		Transport:   model.Transport(remote.Type),
		Description: doc.Description,
		Enabled:     true,
		Source:      model.SourceAPI,
		Origin:      originBase + "#" + doc.Name,
	}
	if err := s.Normalize(); err != nil {
		var fe *model.FieldError
		if errors.As(err, &fe) && fe.Field == "upstream" {
			err = &model.FieldError{Field: "remotes[].url", Reason: fe.Reason}
		}
		return nil, nil, fmt.Errorf("server %q: %w", doc.Name, err)
	}
	var headers []string
	for _, h := range remote.Headers {
		headers = append(headers, h.Name)
	}
	return s, headers, nil
}

// pickRemote chooses the remote the gateway proxies: the first streamable-http one,
// else the first sse one, among those whose URL is not a template.
func pickRemote(doc *v01InServerJSON) (*v01InRemote, error) {
	if len(doc.Remotes) == 0 {
		if len(doc.Packages) > 0 {
			return nil, &model.FieldError{Field: "packages", Reason: "a packages-only server runs on the client's machine and cannot be proxied by the gateway; it needs remotes[] of type streamable-http or sse"}
		}
		return nil, &model.FieldError{Field: "remotes", Reason: "required: a remote of type streamable-http or sse"}
	}
	var sse *v01InRemote
	var reasons []string
	for i := range doc.Remotes {
		r := &doc.Remotes[i]
		switch {
		case r.Type != string(model.TransportStreamableHTTP) && r.Type != string(model.TransportSSE):
			reasons = append(reasons, fmt.Sprintf("remotes[%d].type %q is not streamable-http or sse", i, r.Type))
		case strings.ContainsAny(r.URL, "{}"):
			reasons = append(reasons, fmt.Sprintf("remotes[%d].url %q is a template; URL variables are not supported", i, r.URL))
		case r.Type == string(model.TransportStreamableHTTP):
			return r, nil
		case sse == nil:
			sse = r
		}
	}
	if sse != nil {
		return sse, nil
	}
	return nil, &model.FieldError{Field: "remotes", Reason: strings.Join(reasons, "; ")}
}

// applyImported creates s (a record mapped by serverFromV01) or updates the record of
// the same name when it has the same origin: only the fields the source owns
// (upstream, transport, description) change; path, enabled, tags and the backend
// settings an operator may have set are kept. A name held by any other record is
// skipped with the reason.
func (a *App) applyImported(ctx context.Context, s *model.Server, headers []string, res *V01ImportResult) error {
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
func (a *App) removeImported(ctx context.Context, name, origin string, res *V01ImportResult) error {
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
func (a *App) countWrite(err error, official string, n *int, res *V01ImportResult) error {
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

// parseServerJSONDocuments reads one server.json document or a JSON array of them.
func parseServerJSONDocuments(data []byte) ([]v01InServerJSON, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("body: expected a server.json document or an array of them")
	}
	dec := func(b []byte, v any) error {
		d := json.NewDecoder(bytes.NewReader(b))
		if err := d.Decode(v); err != nil {
			return err
		}
		if _, err := d.Token(); err != io.EOF {
			return errors.New("trailing data after the JSON value")
		}
		return nil
	}
	if data[0] == '[' {
		var docs []v01InServerJSON
		if err := dec(data, &docs); err != nil {
			return nil, fmt.Errorf("body: not a JSON array of server.json documents: %w", err)
		}
		return docs, nil
	}
	var doc v01InServerJSON
	if err := dec(data, &doc); err != nil {
		return nil, fmt.Errorf("body: not a server.json document: %w", err)
	}
	return []v01InServerJSON{doc}, nil
}

// ImportServerJSON registers the servers described by body, one server.json document
// or a JSON array of them (origin
// "server.json#<official name>"), prefixing their names with namePrefix. Every document
// is validated first: an unusable one (no name, packages only, no usable remote, a name
// that cannot be mapped) fails the whole import, naming the server and the field, and
// nothing is written. Names held by other records are skipped with the reason.
func (a *App) ImportServerJSON(ctx context.Context, body []byte, namePrefix string) (*V01ImportResult, error) {
	if !validNamePrefix(namePrefix) {
		return nil, &model.FieldError{Field: "name_prefix", Reason: fmt.Sprintf("%q must be characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit", namePrefix)}
	}
	docs, err := parseServerJSONDocuments(body)
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
		s, headers, err := serverFromV01(&docs[i], namePrefix, ServerJSONOrigin)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if other, dup := seen[s.Name]; dup {
			return nil, fmt.Errorf("document %d: server %q maps to name %q like %q", i, docs[i].Name, s.Name, other)
		}
		seen[s.Name] = docs[i].Name
		all = append(all, mapped{s, headers})
	}
	res := &V01ImportResult{From: ServerJSONOrigin}
	for _, m := range all {
		if err := a.applyImported(ctx, m.s, m.headers, res); err != nil {
			return res, err
		}
	}
	return res, nil
}
