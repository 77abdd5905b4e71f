package registryapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// The registry's REST API, served by mcp_registry_api under <prefix>/api:
//
//	GET    /api/servers                        list: cursor, limit (1-500, default 50), tag (repeatable: all must match),
//	                                           enabled=true|false, health=healthy|unhealthy|auth_required|unknown, q (text in name, description, tags)
//	POST   /api/servers                        register (201; Location, ETag)
//	GET    /api/servers/{name}                 one server (ETag; If-None-Match → 304)
//	PUT    /api/servers/{name}                 update: If-Match "<revision>" (or *) required; stale → 412
//	PATCH  /api/servers/{name}                 JSON merge patch (RFC 7396) of the writable fields; If-Match optional
//	DELETE /api/servers/{name}                 remove (If-Match optional)
//	POST   /api/servers/{name}/enable|disable  toggle (If-Match optional)
//	PUT    /api/servers/{name}/credential      rotate the backend credential (write-only); DELETE removes it
//	POST   /api/servers/{name}/credential/confirm  send a credential suspended by an upstream move to the new origin
//	GET    /api/servers/{name}/tools           tools, prompts, resources found by discovery
//	POST   /api/servers/{name}/tools/refresh   discover tools now
//	GET    /api/servers/{name}/health          last health check
//	POST   /api/servers/{name}/health/check    check health now
//	GET    /api/search?q=&limit=               ranked search over servers and tools
//	GET    /api/connections                    the caller's upstream connections (backend_auth oauth)
//	DELETE /api/connections/{server}           remove the caller's connection to server
//
// Permissions are the policy's UI scopes: list_service (read anything about the server;
// without it the server does not exist for the caller: 404), register_service (POST),
// modify_service (PUT, PATCH, DELETE, credential), toggle_service (enable/disable),
// health_check_service (refresh, check). Errors are JSON {"error", "code", "field"?}.

// Bounds of the REST API's inputs.
const (
	maxAPIBody       = 1 << 20
	defaultListLimit = 50
	maxListLimit     = 500
)

// apiError is the body of every REST API error.
type apiError struct {
	Error string `json:"error"`
	// Code is stable and machine-readable: unauthorized, forbidden, not_found,
	// invalid_field, invalid_json, conflict, precondition_failed, precondition_required,
	// method_not_allowed, unsupported_media_type, too_large, unavailable, internal.
	Code string `json:"code"`
	// Field names the input at fault (invalid_field, some conflicts).
	Field string `json:"field,omitempty"`
}

func restError(w http.ResponseWriter, status int, code, field, msg string) {
	apiWriteJSON(w, status, apiError{Error: msg, Code: code, Field: field})
}

// serveREST serves <prefix>/api/...; rest is the path after /api.
func (h *RegistryAPI) serveREST(w http.ResponseWriter, r *http.Request, rest string) {
	ctx, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	r = r.WithContext(ctx)
	switch {
	case rest == "/servers" || rest == "/servers/":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.restList(w, r)
		case http.MethodPost:
			h.restRegister(w, r)
		default:
			restMethodNotAllowed(w, "GET, HEAD, POST")
		}
		return
	case rest == "/search":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			restMethodNotAllowed(w, "GET, HEAD")
			return
		}
		h.restSearch(w, r)
		return
	case rest == "/connections" || strings.HasPrefix(rest, "/connections/"):
		h.serveConnections(w, r, rest)
		return
	}
	// rest is /servers/{name}[/…]: ServeHTTP passes no other path here.
	escName, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/servers/"), "/")
	name, err := url.PathUnescape(escName)
	if err != nil || name == "" {
		restError(w, http.StatusNotFound, "not_found", "", "no such API endpoint: "+r.URL.Path)
		return
	}
	s := h.app.VisibleServer(ctx, name)
	if s == nil {
		restError(w, http.StatusNotFound, "not_found", "", mcpregistry.NoServerError(name).Error())
		return
	}
	type route struct {
		methods string
		serve   func(http.ResponseWriter, *http.Request, *model.Server)
	}
	var routes map[string]route
	switch sub {
	case "":
		routes = map[string]route{http.MethodGet: {serve: h.restGet}, http.MethodHead: {serve: h.restGet},
			http.MethodPut: {serve: h.restUpdate}, http.MethodPatch: {serve: h.restPatch}, http.MethodDelete: {serve: h.restDelete}}
	case "enable", "disable":
		routes = map[string]route{http.MethodPost: {serve: h.restToggle}}
	case "credential":
		routes = map[string]route{http.MethodPut: {serve: h.restCredential}, http.MethodDelete: {serve: h.restCredential}}
	case "credential/confirm":
		routes = map[string]route{http.MethodPost: {serve: h.restConfirmCredential}}
	case "tools":
		routes = map[string]route{http.MethodGet: {serve: h.restTools}, http.MethodHead: {serve: h.restTools}}
	case "tools/refresh", "health/check":
		routes = map[string]route{http.MethodPost: {serve: h.restCheckNow}}
	case "health":
		routes = map[string]route{http.MethodGet: {serve: h.restHealth}, http.MethodHead: {serve: h.restHealth}}
	default:
		restError(w, http.StatusNotFound, "not_found", "", "no such API endpoint: "+r.URL.Path)
		return
	}
	rt, ok := routes[r.Method]
	if !ok {
		allow := make([]string, 0, len(routes))
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if _, ok := routes[m]; ok {
				allow = append(allow, m)
			}
		}
		restMethodNotAllowed(w, strings.Join(allow, ", "))
		return
	}
	rt.serve(w, r, s)
}

func restMethodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	restError(w, http.StatusMethodNotAllowed, "method_not_allowed", "", "method not allowed here; allowed: "+allow)
}

// restAllowed checks perm on server for the request's caller and answers 403 if not.
func (h *RegistryAPI) restAllowed(w http.ResponseWriter, r *http.Request, perm policy.UIPermission, server string) bool {
	if !h.callerMay(r.Context(), perm, server) {
		restError(w, http.StatusForbidden, "forbidden", "", h.deniedMessage(r.Context(), perm, server))
		return false
	}
	return true
}

// restWriteError answers the error of an App write.
func (h *RegistryAPI) restWriteError(w http.ResponseWriter, r *http.Request, name string, err error) {
	var fe *model.FieldError
	var rm *model.RevisionMismatchError
	switch {
	case errors.As(err, &fe):
		restError(w, http.StatusBadRequest, "invalid_field", fe.Field, "invalid "+fe.Field+": "+fe.Reason)
	case errors.As(err, &rm) && rm.Expected == 0:
		restError(w, http.StatusConflict, "conflict", "name", "a server named "+strconv.Quote(name)+" already exists")
	case errors.As(err, &rm):
		if rm.Current != 0 {
			w.Header().Set("ETag", etagOf(rm.Current))
		}
		restError(w, http.StatusPreconditionFailed, "precondition_failed", "", err.Error()+"; GET it again, reapply your change and send the new ETag in If-Match")
	case errors.Is(err, model.ErrPathConflict):
		restError(w, http.StatusConflict, "conflict", "path", err.Error())
	case errors.Is(err, mcpregistry.ErrConfigManaged):
		restError(w, http.StatusConflict, "conflict", "", err.Error()+"; change it in the Caddy config")
	case errors.Is(err, model.ErrNotFound):
		restError(w, http.StatusNotFound, "not_found", "", mcpregistry.NoServerError(name).Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		restError(w, http.StatusServiceUnavailable, "unavailable", "", "the request ended before the registry answered")
	default:
		h.logger.Error("registry API write failed", zap.String("server", name), zap.Error(err))
		restError(w, http.StatusInternalServerError, "internal", "", "the registry could not complete the write; nothing was changed")
	}
}

// etagOf is the strong ETag of a record revision.
func etagOf(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// ifMatch reads If-Match: the revision it names, AnyRevision for "*", present=false
// when absent. A malformed value (weak, list of several, not a revision) is an error.
func ifMatch(r *http.Request) (rev uint64, present bool, err error) {
	vals := r.Header.Values("If-Match")
	if len(vals) == 0 {
		return 0, false, nil
	}
	v := strings.TrimSpace(strings.Join(vals, ","))
	if v == "*" {
		return model.AnyRevision, true, nil
	}
	if !strings.HasPrefix(v, `"`) || !strings.HasSuffix(v, `"`) || len(v) < 3 {
		return 0, true, errors.New(`If-Match must be one strong ETag as returned by GET, e.g. "12", or *`)
	}
	rev, perr := strconv.ParseUint(v[1:len(v)-1], 10, 64)
	if errors.Is(perr, strconv.ErrRange) || (perr == nil && rev >= unreachableRevision) {
		// A revision no record can have: it matches nothing (412), and it must not
		// wrap around to AnyRevision and match everything.
		return unreachableRevision, true, nil
	}
	if perr != nil || rev == 0 {
		return 0, true, errors.New(`If-Match must be one strong ETag as returned by GET, e.g. "12", or *`)
	}
	return rev, true, nil
}

// unreachableRevision stands for an If-Match revision beyond any a record can reach.
const unreachableRevision = model.AnyRevision - 1

// optionalIfMatch returns the expected revision of a write where If-Match is optional.
func optionalIfMatch(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	rev, present, err := ifMatch(r)
	if err != nil {
		restError(w, http.StatusBadRequest, "invalid_field", "If-Match", err.Error())
		return 0, false
	}
	if !present {
		return model.AnyRevision, true
	}
	return rev, true
}
