package mcpregistry

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ServerJSONSchema is the server.json schema the v0.1 API's documents follow
// (modelcontextprotocol/registry docs/reference/server-json/server.schema.json).
const ServerJSONSchema = "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json"

// officialMetaKey is the registry-managed _meta block of a v0.1 ServerResponse.
const officialMetaKey = "io.modelcontextprotocol.registry/official"

// v0.1 list limits (official registry: default 30, at most 100).
const (
	v01DefaultLimit = 30
	v01MaxLimit     = 100
	v01MaxDesc      = 100 // server.json description maxLength, in characters
)

// v01ServerJSON is a server.json document (the subset this registry fills in).
type v01ServerJSON struct {
	Schema      string      `json:"$schema"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Version     string      `json:"version"`
	Remotes     []v01Remote `json:"remotes"`
}

// v01Remote is a StreamableHttpTransport or SseTransport of server.json.
type v01Remote struct {
	Type    string      `json:"type"`
	URL     string      `json:"url"`
	Headers []v01Header `json:"headers,omitempty"`
}

// v01Header is a KeyValueInput of server.json.
type v01Header struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	IsRequired  bool   `json:"isRequired"`
	IsSecret    bool   `json:"isSecret"`
}

// v01Official is the registry-managed metadata of one server version.
type v01Official struct {
	Status      string    `json:"status"`
	PublishedAt time.Time `json:"publishedAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	IsLatest    bool      `json:"isLatest"`
}

// v01ServerResponse is a ServerResponse of the official API.
type v01ServerResponse struct {
	Server v01ServerJSON          `json:"server"`
	Meta   map[string]v01Official `json:"_meta"`
}

// v01Metadata is the metadata of a ServerList.
type v01Metadata struct {
	NextCursor string `json:"nextCursor,omitempty"`
	Count      int    `json:"count"`
}

// v01ServerList is a ServerList of the official API.
type v01ServerList struct {
	Servers  []v01ServerResponse `json:"servers"`
	Metadata v01Metadata         `json:"metadata"`
}

// serveV01 serves <prefix>/v0.1/servers<rest>.
func (h *RegistryAPI) serveV01(w http.ResponseWriter, r *http.Request, rest string) {
	apiSetCORS(w)
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet, http.MethodHead:
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		apiWriteError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed; this API is read-only")
		return
	}
	if rest == "" || rest == "/" {
		h.v01List(w, r)
		return
	}
	name, version, ok := splitV01Path(rest)
	if !ok {
		apiWriteError(w, http.StatusNotFound, "not found: use /v0.1/servers/{name}/versions[/{version}]")
		return
	}
	s := h.v01Lookup(name)
	if s == nil {
		apiWriteError(w, http.StatusNotFound, "Server not found")
		return
	}
	resp := h.v01Response(s, r)
	if version == "" {
		apiWriteJSON(w, http.StatusOK, v01ServerList{Servers: []v01ServerResponse{resp}, Metadata: v01Metadata{Count: 1}})
		return
	}
	if version != "latest" && version != resp.Server.Version {
		apiWriteError(w, http.StatusNotFound, "Server version not found")
		return
	}
	apiWriteJSON(w, http.StatusOK, resp)
}

// splitV01Path splits "/{name}/versions[/{version}]" (escaped) into the unescaped name
// and version ("" for the list of versions). The name may hold an escaped (%2F) or a
// plain slash; the version must be one segment.
func splitV01Path(rest string) (name, version string, ok bool) {
	rest = strings.TrimPrefix(rest, "/")
	var rawName, rawVersion string
	if n, found := strings.CutSuffix(rest, "/versions"); found {
		rawName = n
	} else if i := strings.LastIndex(rest, "/versions/"); i >= 0 {
		rawName, rawVersion = rest[:i], rest[i+len("/versions/"):]
		if rawVersion == "" || strings.Contains(rawVersion, "/") {
			return "", "", false
		}
	} else {
		return "", "", false
	}
	name, err := url.PathUnescape(rawName)
	if err != nil || name == "" {
		return "", "", false
	}
	if rawVersion != "" {
		if version, err = url.PathUnescape(rawVersion); err != nil {
			return "", "", false
		}
	}
	return name, version, true
}

// v01Lookup returns the enabled server published as name (<namespace>/<server>), or nil.
func (h *RegistryAPI) v01Lookup(name string) *Server {
	local, ok := strings.CutPrefix(name, h.Namespace+"/")
	if !ok {
		return nil
	}
	s := h.app.Server(local)
	if s == nil || !s.Enabled {
		return nil
	}
	return s
}

// v01List serves GET /v0.1/servers.
func (h *RegistryAPI) v01List(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		apiWriteError(w, http.StatusBadRequest, "query: malformed query string: "+err.Error())
		return
	}
	limit := v01DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > v01MaxLimit {
			apiWriteError(w, http.StatusBadRequest, "limit: "+strconv.Quote(v)+" must be an integer from 1 to 100")
			return
		}
		limit = n
	}
	var after string
	if v := q.Get("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || !utf8.Valid(b) || len(b) == 0 {
			apiWriteError(w, http.StatusBadRequest, "cursor: not a cursor this registry returned")
			return
		}
		after = string(b)
	}
	var since time.Time
	if v := q.Get("updated_since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			apiWriteError(w, http.StatusBadRequest, "updated_since: "+strconv.Quote(v)+" is not an RFC 3339 timestamp, e.g. 2025-08-07T13:15:04Z")
			return
		}
		since = t
	}
	if v := q.Get("include_deleted"); v != "" {
		// Deleted servers leave no tombstone in this API yet, so there is nothing to
		// include: the parameter is accepted and has no effect.
		if _, err := strconv.ParseBool(v); err != nil {
			apiWriteError(w, http.StatusBadRequest, "include_deleted: "+strconv.Quote(v)+" must be true or false")
			return
		}
	}
	version := q.Get("version") // "latest" (every record is its own latest) or an exact version
	search := strings.ToLower(q.Get("search"))

	out := v01ServerList{Servers: []v01ServerResponse{}}
	servers := h.app.ListServers() // ordered by name, so cursors are stable
	if rest, ok := strings.CutPrefix(after, h.Namespace+"/"); ok {
		// Every published name is <namespace>/<name>: skip to the first name after the
		// cursor's at once rather than comparing each.
		i, found := slices.BinarySearchFunc(servers, rest, func(s *Server, name string) int { return strings.Compare(s.Name, name) })
		if found {
			i++
		}
		servers = servers[i:]
	}
	for _, s := range servers {
		if !s.Enabled {
			continue
		}
		pub := h.Namespace + "/" + s.Name
		if after != "" && pub <= after {
			continue
		}
		if !since.IsZero() && !s.UpdatedAt.After(since) {
			continue
		}
		if version != "" && version != "latest" && version != v01Version(s) {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(pub), search) &&
			!strings.Contains(strings.ToLower(s.Description), search) {
			continue
		}
		out.Servers = append(out.Servers, h.v01Response(s, r))
		if len(out.Servers) == limit {
			break
		}
	}
	out.Metadata.Count = len(out.Servers)
	if len(out.Servers) == limit {
		// Like the official registry, a full page always carries a cursor; the page
		// after the last full one is then empty and carries none.
		last := out.Servers[len(out.Servers)-1].Server.Name
		out.Metadata.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(last))
	}
	apiWriteJSON(w, http.StatusOK, out)
}

// v01Version is the server.json version of a record: 1.0.<revision>, so every change
// of the record (which bumps its revision) publishes a new, higher version.
func v01Version(s *Server) string {
	return "1.0." + strconv.FormatUint(s.Revision, 10)
}

// v01Response renders s as a ServerResponse.
func (h *RegistryAPI) v01Response(s *Server, r *http.Request) v01ServerResponse {
	origin := h.PublicURL
	if origin == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		origin = scheme + "://" + r.Host
	}
	remote := v01Remote{Type: string(TransportStreamableHTTP), URL: origin + h.GatewayPrefix + "/" + s.Path + "/mcp"}
	if s.Transport == TransportSSE {
		remote = v01Remote{Type: string(TransportSSE), URL: origin + h.GatewayPrefix + "/" + s.Path + "/sse"}
	}
	if h.AuthHeaderRequired {
		hdr := v01Header{Name: "Authorization", Description: "Bearer token for the MCP gateway: Authorization: Bearer <token>", IsRequired: true, IsSecret: true}
		if s.GatewayTokenHeader == GatewayTokenXAuthorization {
			hdr = v01Header{Name: "X-Authorization", Description: "Bearer token for the MCP gateway: X-Authorization: Bearer <token>", IsRequired: true, IsSecret: true}
		}
		remote.Headers = []v01Header{hdr}
	}
	desc := s.Description
	if strings.TrimSpace(desc) == "" {
		desc = "MCP server " + s.Name // server.json requires a non-empty description
	}
	return v01ServerResponse{
		Server: v01ServerJSON{
			Schema:      ServerJSONSchema,
			Name:        h.Namespace + "/" + s.Name,
			Description: truncateRunes(desc, v01MaxDesc),
			Version:     v01Version(s),
			Remotes:     []v01Remote{remote},
		},
		Meta: map[string]v01Official{officialMetaKey: {
			Status:      "active",
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
