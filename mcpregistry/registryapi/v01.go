package registryapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddymcp/caddymcp/internal/origin"
	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/v01"
)

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
	if h.V01Auth {
		ctx, ok := h.authenticate(w, r)
		if !ok {
			return
		}
		r = r.WithContext(ctx)
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
	var resp v01.ServerResponse
	if s := h.v01Lookup(name); s != nil && h.v01Visible(r.Context(), s.Name) {
		resp = h.v01Response(s, r)
	} else if t := h.v01LookupDeleted(name, r); t != nil && h.v01Visible(r.Context(), t.Name) {
		resp = h.publisher().Deleted(t)
	} else {
		apiWriteError(w, http.StatusNotFound, "Server not found")
		return
	}
	if version == "" {
		apiWriteJSON(w, http.StatusOK, v01.ServerList{Servers: []v01.ServerResponse{resp}, Metadata: v01.Metadata{Count: 1}})
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
func (h *RegistryAPI) v01Lookup(name string) *model.Server {
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

// v01Visible reports whether the caller of the v0.1 API sees the server (live or
// deleted) named name: an authenticated caller what list_service grants, an anonymous
// one what V01Public lists. A deletion is news only to who could see the server.
func (h *RegistryAPI) v01Visible(ctx context.Context, name string) bool {
	if _, ok := principal.FromContext(ctx); ok {
		return mcpregistry.Allowed(ctx, policy.ListService, name)
	}
	if h.V01Public == nil {
		return h.Auth == nil
	}
	return slices.Contains(h.V01Public, "all") || slices.Contains(h.V01Public, name)
}

// v01LookupDeleted returns the tombstone of the server published as name when the
// request asks for deleted servers (include_deleted=true) and there is one, or nil.
func (h *RegistryAPI) v01LookupDeleted(name string, r *http.Request) *model.Tombstone {
	if ok, _ := strconv.ParseBool(r.URL.Query().Get("include_deleted")); !ok {
		return nil
	}
	local, ok := strings.CutPrefix(name, h.Namespace+"/")
	if !ok || !h.app.Ready() {
		return nil
	}
	var t *model.Tombstone
	if err := func() (err error) { t, err = h.app.Tombstone(local); return }(); err != nil {
		return nil
	}
	return t
}

// v01List serves GET /v0.1/servers.
//
// Entries are ordered by published name; with include_deleted=true (implied by
// updated_since, as in the official API, so that a syncing client learns of deletions)
// the store's tombstones are merged into that order as entries of status "deleted".
// A name is never both live and a tombstone, so the cursor (the last name of a page)
// is the same for both kinds of entry.
func (h *RegistryAPI) v01List(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		apiWriteError(w, http.StatusBadRequest, "query: malformed query string: "+err.Error())
		return
	}
	limit := v01.DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > v01.MaxLimit {
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
	includeDeleted := !since.IsZero() // the official API: "always true when updated_since is provided"
	if v := q.Get("include_deleted"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			apiWriteError(w, http.StatusBadRequest, "include_deleted: "+strconv.Quote(v)+" must be true or false")
			return
		}
		includeDeleted = includeDeleted || b
	}
	version := q.Get("version") // "latest" (every record is its own latest) or an exact version
	search := strings.ToLower(q.Get("search"))

	servers := h.app.ListServers() // ordered by name, so cursors are stable
	full := servers
	var tombs []*model.Tombstone // ordered by name too
	if includeDeleted && h.app.Ready() {
		if err := func() (err error) { tombs, err = h.app.Tombstones(); return }(); err != nil {
			apiWriteError(w, http.StatusInternalServerError, "reading deleted servers: "+err.Error())
			return
		}
	}
	if rest, ok := strings.CutPrefix(after, h.Namespace+"/"); ok {
		// Every published name is <namespace>/<name>: skip to the first name after the
		// cursor's at once rather than comparing each.
		i, found := slices.BinarySearchFunc(servers, rest, func(s *model.Server, name string) int { return strings.Compare(s.Name, name) })
		if found {
			i++
		}
		servers = servers[i:]
		j, found := slices.BinarySearchFunc(tombs, rest, func(t *model.Tombstone, name string) int { return strings.Compare(t.Name, name) })
		if found {
			j++
		}
		tombs = tombs[j:]
	}
	nsSlash := h.Namespace + "/"
	// matches reports whether the entry of local name name (published as nsSlash+name)
	// passes the query's filters; it builds the published name or the version only
	// for the filters that need them.
	matches := func(name, desc string, rev uint64, updated time.Time) bool {
		if after != "" && v01ComparePub(nsSlash, name, after) <= 0 {
			return false
		}
		if !since.IsZero() && !updated.After(since) {
			return false
		}
		if version != "" && version != "latest" && version != "1.0."+strconv.FormatUint(rev, 10) {
			return false
		}
		return search == "" || strings.Contains(strings.ToLower(nsSlash+name), search) ||
			strings.Contains(strings.ToLower(desc), search)
	}
	// The page is written as the concatenation of each entry's JSON (see v01Cache), or,
	// with the cache off, encoded from structs as a whole; both give the same bytes.
	cache := !h.v01.off
	var (
		out   v01.ServerList
		page  *[]byte
		buf   []byte
		table *v01Table
		key   *v01CacheKey
		base  string // the origin remote URLs start with
		oEsc  []byte
		count int
		last  string // the local name of the page's last entry
	)
	if cache {
		page = v01PagePool.Get().(*[]byte)
		defer func() {
			if cap(*page) <= v01MaxPooledPage {
				v01PagePool.Put(page)
			}
		}()
		key = h.v01CacheKeyOf()
		table = h.v01.tableFor(full)
		base = origin.Resolve(h.PublicURL, r)
		oEsc = h.v01.escapedOrigin(base)
		buf = append((*page)[:0], `{"servers":[`...)
	} else {
		out.Servers = []v01.ServerResponse{}
	}
	addLive := func(i int, s *model.Server) { // s = full[i]
		if cache {
			if count > 0 {
				buf = append(buf, ',')
			}
			if e, ok := table.entry(h, key, i, s); ok {
				buf = append(buf, e.head...)
				buf = append(buf, oEsc...)
				buf = append(buf, e.tail...)
			} else {
				b, _ := json.Marshal(h.publisher().Response(s, base))
				buf = append(buf, b...)
			}
		} else {
			out.Servers = append(out.Servers, h.v01Response(s, r))
		}
		count++
		last = s.Name
	}
	addDeleted := func(t *model.Tombstone) {
		if cache {
			if count > 0 {
				buf = append(buf, ',')
			}
			b, _ := json.Marshal(h.publisher().Deleted(t))
			buf = append(buf, b...)
		} else {
			out.Servers = append(out.Servers, h.publisher().Deleted(t))
		}
		count++
		last = t.Name
	}
	for count < limit && (len(servers) > 0 || len(tombs) > 0) {
		// Merge the two name-ordered lists; a live record wins over a (stale) tombstone
		// of the same name.
		if len(tombs) == 0 || (len(servers) > 0 && servers[0].Name <= tombs[0].Name) {
			i, s := len(full)-len(servers), servers[0]
			servers = servers[1:]
			if len(tombs) > 0 && tombs[0].Name == s.Name {
				tombs = tombs[1:]
			}
			if s.Enabled && matches(s.Name, s.Description, s.Revision, s.UpdatedAt) && h.v01Visible(r.Context(), s.Name) {
				addLive(i, s)
			}
			continue
		}
		t := tombs[0]
		tombs = tombs[1:]
		if matches(t.Name, "", t.Revision, t.DeletedAt) && h.v01Visible(r.Context(), t.Name) {
			addDeleted(t)
		}
	}
	out.Metadata.Count = count
	if count == limit {
		// Like the official registry, a full page always carries a cursor; the page
		// after the last full one is then empty and carries none.
		out.Metadata.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(nsSlash + last))
	}
	if !cache {
		apiWriteJSON(w, http.StatusOK, out)
		return
	}
	// json.Marshal(v01.ServerList{...}) + "\n", as apiWriteJSON writes it.
	buf = append(buf, `],"metadata":{`...)
	if out.Metadata.NextCursor != "" {
		buf = append(buf, `"nextCursor":"`...)
		buf = append(buf, out.Metadata.NextCursor...) // base64url: nothing to escape
		buf = append(buf, `",`...)
	}
	buf = append(buf, `"count":`...)
	buf = strconv.AppendInt(buf, int64(count), 10)
	buf = append(buf, "}}\n"...)
	*page = buf
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	// With the length known, net/http need not chunk the body (one write less).
	hdr.Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
}

// v01ComparePub compares prefix+name with s (strings.Compare) without building it.
func v01ComparePub(prefix, name, s string) int {
	k := min(len(prefix), len(s))
	if c := strings.Compare(prefix[:k], s[:k]); c != 0 {
		return c
	}
	if len(s) < len(prefix) {
		return 1 // s is a proper prefix of prefix+name
	}
	return strings.Compare(name, s[len(prefix):])
}

// v01Response renders s as a ServerResponse.
func (h *RegistryAPI) v01Response(s *model.Server, r *http.Request) v01.ServerResponse {
	return h.publisher().Response(s, origin.Resolve(h.PublicURL, r))
}

// publisher renders records as v0.1 documents under this handler's settings.
func (h *RegistryAPI) publisher() v01.Publisher {
	return v01.Publisher{Namespace: h.Namespace, GatewayPrefix: h.GatewayPrefix, AuthHeaderRequired: h.AuthHeaderRequired}
}
