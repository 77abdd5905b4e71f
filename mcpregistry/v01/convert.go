package v01

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

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
func ValidNamePrefix(p string) bool {
	return p == "" || model.ValidName(p)
}

// ToServer maps a server.json to a new Server record of the given origin prefix
// ("server.json" or a registry base URL). It returns the headers the chosen remote
// expects from its client (which the gateway cannot send), or an error naming the
// server and the field that makes it unusable.
func ToServer(doc *InServerJSON, prefix, originBase string) (*model.Server, []string, error) {
	if doc.Name == "" {
		return nil, nil, &model.FieldError{Field: "name", Reason: "required"}
	}
	name, err := ImportedName(doc.Name, prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("server %q: %w", doc.Name, err)
	}
	remote, err := PickRemote(doc)
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

// PickRemote chooses the remote the gateway proxies: the first streamable-http one,
// else the first sse one, among those whose URL is not a template.
func PickRemote(doc *InServerJSON) (*InRemote, error) {
	if len(doc.Remotes) == 0 {
		if len(doc.Packages) > 0 {
			return nil, &model.FieldError{Field: "packages", Reason: "a packages-only server runs on the client's machine and cannot be proxied by the gateway; it needs remotes[] of type streamable-http or sse"}
		}
		return nil, &model.FieldError{Field: "remotes", Reason: "required: a remote of type streamable-http or sse"}
	}
	var sse *InRemote
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

// parseServerJSONDocuments reads one server.json document or a JSON array of them.
func ParseDocuments(data []byte) ([]InServerJSON, error) {
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
		var docs []InServerJSON
		if err := dec(data, &docs); err != nil {
			return nil, fmt.Errorf("body: not a JSON array of server.json documents: %w", err)
		}
		return docs, nil
	}
	var doc InServerJSON
	if err := dec(data, &doc); err != nil {
		return nil, fmt.Errorf("body: not a server.json document: %w", err)
	}
	return []InServerJSON{doc}, nil
}

// Publisher renders this registry's records as v0.1 documents.
type Publisher struct {
	// Namespace is the first part of every official name: <Namespace>/<server name>.
	Namespace string
	// GatewayPrefix is the path prefix of the gateway's MCP endpoints, "" or "/<p>".
	GatewayPrefix string
	// AuthHeaderRequired lists the gateway's token header as a required secret header
	// of every remote.
	AuthHeaderRequired bool
}

// Version is the server.json version of a record: 1.0.<revision>, so every change
// of the record (which bumps its revision) publishes a new, higher version.
func Version(s *model.Server) string {
	return "1.0." + strconv.FormatUint(s.Revision, 10)
}

// TombstoneVersion is the server.json version of a deleted server: its tombstone's
// revision (the deleted record's plus one), so the deletion is a new, higher version.
func TombstoneVersion(t *model.Tombstone) string {
	return "1.0." + strconv.FormatUint(t.Revision, 10)
}

// Deleted renders the tombstone t as a ServerResponse of status "deleted": a
// server.json with no remotes (there is nothing to connect to), updatedAt the time of
// the deletion.
func (p Publisher) Deleted(t *model.Tombstone) ServerResponse {
	return ServerResponse{
		Server: ServerJSON{
			Schema:      SchemaURL,
			Name:        p.Namespace + "/" + t.Name,
			Description: truncateRunes("Deleted MCP server "+t.Name, MaxDescription),
			Version:     TombstoneVersion(t),
		},
		Meta: map[string]Official{OfficialMetaKey: {
			Status:    StatusDeleted,
			UpdatedAt: t.DeletedAt.UTC(),
			IsLatest:  true,
		}},
	}
}

// Response renders s as a ServerResponse whose remote URL starts with origin.
func (p Publisher) Response(s *model.Server, origin string) ServerResponse {
	remote := Remote{Type: string(model.TransportStreamableHTTP), URL: origin + p.GatewayPrefix + "/" + s.Path + "/mcp"}
	if s.Transport == model.TransportSSE {
		remote = Remote{Type: string(model.TransportSSE), URL: origin + p.GatewayPrefix + "/" + s.Path + "/sse"}
	}
	if p.AuthHeaderRequired {
		hdr := Header{Name: "Authorization", Description: "Bearer token for the MCP gateway: Authorization: Bearer <token>", IsRequired: true, IsSecret: true}
		if s.GatewayTokenHeader == model.GatewayTokenXAuthorization {
			hdr = Header{Name: "X-Authorization", Description: "Bearer token for the MCP gateway: X-Authorization: Bearer <token>", IsRequired: true, IsSecret: true}
		}
		remote.Headers = []Header{hdr}
	}
	desc := s.Description
	if strings.TrimSpace(desc) == "" {
		desc = "MCP server " + s.Name // server.json requires a non-empty description
	}
	return ServerResponse{
		Server: ServerJSON{
			Schema:      SchemaURL,
			Name:        p.Namespace + "/" + s.Name,
			Description: truncateRunes(desc, MaxDescription),
			Version:     Version(s),
			Remotes:     []Remote{remote},
		},
		Meta: map[string]Official{OfficialMetaKey: {
			Status:      StatusActive,
			PublishedAt: s.CreatedAt.UTC(),
			UpdatedAt:   s.UpdatedAt.UTC(),
			IsLatest:    true,
		}},
	}
}

// truncateRunes shortens s to at most n characters (runes), ending it with "…" when cut.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}
