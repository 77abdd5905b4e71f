package registryapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddymcp/caddymcp/internal/origin"
	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// apiServer is a server as the REST API shows it. The upstream URL is shown only to
// callers who may modify the server; credentials never.
type apiServer struct {
	Name          string            `json:"name"`
	Path          string            `json:"path"`
	URL           string            `json:"url"`
	Upstream      string            `json:"upstream,omitempty"`
	Transport     model.Transport   `json:"transport"`
	Description   string            `json:"description,omitempty"`
	Tags          []string          `json:"tags"`
	Enabled       bool              `json:"enabled"`
	BackendAuth   model.BackendAuth `json:"backend_auth"`
	HasCredential bool              `json:"has_credential"`
	// CredentialSuspended: the credential was given for another upstream origin and is
	// not sent until confirmed (POST …/credential/confirm) or replaced.
	CredentialSuspended bool                   `json:"credential_suspended,omitempty"`
	GatewayTokenHeader  string                 `json:"gateway_token_header,omitempty"`
	ForwardIdentity     *model.ForwardIdentity `json:"forward_identity,omitempty"`
	Source              model.Source           `json:"source"`
	Origin              string                 `json:"origin,omitempty"`
	Revision            uint64                 `json:"revision"`
	CreatedAt           time.Time              `json:"created_at"`
	UpdatedAt           time.Time              `json:"updated_at"`
	Health              apiHealth              `json:"health"`
	ToolCount           int                    `json:"tool_count"`
}

// apiHealth is the health summary inside apiServer.
type apiHealth struct {
	Status          model.HealthStatus `json:"status"`
	LatencyMS       float64            `json:"latency_ms,omitempty"`
	LastError       string             `json:"last_error,omitempty"`
	ProtocolVersion string             `json:"protocol_version,omitempty"`
	CheckedAt       time.Time          `json:"checked_at,omitzero"`
	LastHealthyAt   time.Time          `json:"last_healthy_at,omitzero"`
}

func healthSummary(hl model.ServerHealth) apiHealth {
	return apiHealth{Status: hl.Status, LatencyMS: hl.LatencyMS, LastError: hl.LastError,
		ProtocolVersion: hl.ProtocolVersion, CheckedAt: hl.CheckedAt, LastHealthyAt: hl.LastHealthyAt}
}

func (h *RegistryAPI) view(r *http.Request, s *model.Server) apiServer {
	hl, _ := h.app.Health(s.Name)
	v := apiServer{
		Name: s.Name, Path: s.Path, URL: origin.Resolve(h.PublicURL, r) + h.GatewayPrefix + "/" + s.Path + s.GatewayEndpoint(),
		Transport: s.Transport, Description: s.Description, Tags: s.Tags, Enabled: s.Enabled,
		BackendAuth: s.BackendAuth, HasCredential: h.app.HasCredential(s.Name), CredentialSuspended: h.app.CredentialSuspended(s),
		GatewayTokenHeader: s.GatewayTokenHeader, ForwardIdentity: s.ForwardIdentity,
		Source: s.Source, Origin: s.Origin, Revision: s.Revision, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
		Health: healthSummary(hl), ToolCount: len(h.app.VisibleTools(r.Context(), s)),
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	if h.callerMay(r.Context(), policy.ModifyService, s.Name) {
		v.Upstream = s.Upstream
	}
	return v
}

// serverInput is the body of register (POST) and update (PUT), and what a PATCH is
// merged into (inputOf the current record). Read-only fields of apiServer are accepted
// and ignored, so a client can PUT back what it got.
type serverInput struct {
	Name               string                 `json:"name"`
	Path               string                 `json:"path"`
	Upstream           string                 `json:"upstream"`
	Transport          model.Transport        `json:"transport"`
	Description        string                 `json:"description"`
	Tags               []string               `json:"tags"`
	Enabled            *bool                  `json:"enabled"`
	BackendAuth        *model.BackendAuth     `json:"backend_auth"`
	GatewayTokenHeader string                 `json:"gateway_token_header"`
	ForwardIdentity    *model.ForwardIdentity `json:"forward_identity"`
	// Credential is write-only: sealed and never returned.
	Credential *mcpregistry.Credential `json:"credential"`

	// Read-only, ignored.
	URL           json.RawMessage `json:"url"`
	HasCredential json.RawMessage `json:"has_credential"`
	Suspended     json.RawMessage `json:"credential_suspended"`
	Source        json.RawMessage `json:"source"`
	Origin        json.RawMessage `json:"origin"`
	Revision      json.RawMessage `json:"revision"`
	CreatedAt     json.RawMessage `json:"created_at"`
	UpdatedAt     json.RawMessage `json:"updated_at"`
	Health        json.RawMessage `json:"health"`
	ToolCount     json.RawMessage `json:"tool_count"`
}

// decodeBody reads a JSON body of at most maxAPIBody into v, answering 4xx itself.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && mt != "application/merge-patch+json") {
			restError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type", "the body must be application/json")
			return false
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("more than one JSON value")
		}
	}
	if err == nil {
		return true
	}
	var tooLarge *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &tooLarge):
		restError(w, http.StatusRequestEntityTooLarge, "too_large", "", fmt.Sprintf("the body is larger than %d bytes", maxAPIBody))
	case errors.As(err, &typeErr):
		restError(w, http.StatusBadRequest, "invalid_field", typeErr.Field, fmt.Sprintf("invalid %s: want a JSON %s, got %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		restError(w, http.StatusBadRequest, "invalid_json", "", "the body is not valid JSON: "+err.Error())
	case isUnknownField(err):
		field, _ := unknownField(err)
		restError(w, http.StatusBadRequest, "invalid_field", field, "unknown field "+strconv.Quote(field))
	default:
		restError(w, http.StatusBadRequest, "invalid_json", "", "the body is not valid JSON: "+err.Error())
	}
	return false
}

// unknownField extracts the field name of encoding/json's DisallowUnknownFields error.
func unknownField(err error) (string, bool) {
	rest, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	return strings.Trim(rest, `"`), ok
}

func isUnknownField(err error) bool { _, ok := unknownField(err); return ok }

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	}
	return "number"
}

// inputOf is s's writable fields as a serverInput: what a PUT of s would carry, minus
// the credential, which is never read back.
func inputOf(s *model.Server) *serverInput {
	enabled, auth := s.Enabled, s.BackendAuth
	return &serverInput{
		Name: s.Name, Path: s.Path, Upstream: s.Upstream, Transport: s.Transport, Description: s.Description,
		Tags: s.Tags, Enabled: &enabled, BackendAuth: &auth, GatewayTokenHeader: s.GatewayTokenHeader,
		ForwardIdentity: s.ForwardIdentity,
	}
}

// record builds the server record an input asks for, over cur (nil when registering).
func (in *serverInput) record(cur *model.Server) *model.Server {
	s := &model.Server{
		Name: in.Name, Path: in.Path, Upstream: in.Upstream, Transport: in.Transport,
		Description: in.Description, Tags: in.Tags, Enabled: true,
		GatewayTokenHeader: in.GatewayTokenHeader, ForwardIdentity: in.ForwardIdentity, Source: model.SourceAPI,
	}
	if cur != nil {
		s.Enabled = cur.Enabled
		// A synced record stays the sync's (it updates upstream, transport, description).
		s.Origin = cur.Origin
	}
	if in.Enabled != nil {
		s.Enabled = *in.Enabled
	}
	if in.BackendAuth != nil {
		s.BackendAuth = *in.BackendAuth
	}
	return s
}

func (h *RegistryAPI) restList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			restError(w, http.StatusBadRequest, "invalid_field", "limit", fmt.Sprintf("limit must be an integer from 1 to %d", maxListLimit))
			return
		}
		limit = n
	}
	after := ""
	if c := q.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(raw) == 0 || !strings.HasPrefix(string(raw), "n:") {
			restError(w, http.StatusBadRequest, "invalid_field", "cursor", "cursor is not one this API returned (use next_cursor as given)")
			return
		}
		after = string(raw[2:])
	}
	var enabled *bool
	if v := q.Get("enabled"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			restError(w, http.StatusBadRequest, "invalid_field", "enabled", "enabled must be true or false")
			return
		}
		enabled = &b
	}
	health := model.HealthStatus(q.Get("health"))
	switch health {
	case "", model.HealthHealthy, model.HealthUnhealthy, model.HealthAuthRequired, model.HealthUnknown:
	default:
		restError(w, http.StatusBadRequest, "invalid_field", "health", "health must be one of healthy, unhealthy, auth_required, unknown")
		return
	}
	tags := q["tag"]
	text := strings.ToLower(strings.TrimSpace(q.Get("q")))
	if len(text) > 256 {
		restError(w, http.StatusBadRequest, "invalid_field", "q", "q is longer than 256 bytes")
		return
	}

	all := h.app.ListServers() // sorted by name
	i, _ := slices.BinarySearchFunc(all, after, func(s *model.Server, name string) int { return strings.Compare(s.Name, name) })
	if i < len(all) && all[i].Name == after {
		i++
	}
	out := make([]apiServer, 0, min(limit, 64))
	next := ""
	for ; i < len(all); i++ {
		s := all[i]
		switch {
		case enabled != nil && s.Enabled != *enabled,
			len(tags) > 0 && !hasAllTags(s.Tags, tags),
			text != "" && !matchesText(s, text),
			!h.app.CanList(r.Context(), s):
			continue
		}
		if health != "" {
			if hl, _ := h.app.Health(s.Name); hl.Status != health {
				continue
			}
		}
		if len(out) == limit {
			next = base64.RawURLEncoding.EncodeToString([]byte("n:" + out[len(out)-1].Name))
			break
		}
		out = append(out, h.view(r, s))
	}
	apiWriteJSON(w, http.StatusOK, map[string]any{"servers": out, "next_cursor": next})
}

func hasAllTags(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// matchesText: lower-case text is in the name, description or a tag.
func matchesText(s *model.Server, text string) bool {
	if strings.Contains(s.Name, text) || strings.Contains(strings.ToLower(s.Description), text) {
		return true
	}
	for _, t := range s.Tags {
		if strings.Contains(strings.ToLower(t), text) {
			return true
		}
	}
	return false
}

func (h *RegistryAPI) restGet(w http.ResponseWriter, r *http.Request, s *model.Server) {
	etag := etagOf(s.Revision)
	w.Header().Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == "*" || slices.Contains(strings.Split(strings.ReplaceAll(inm, " ", ""), ","), etag)) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	apiWriteJSON(w, http.StatusOK, h.view(r, s))
}

func (h *RegistryAPI) restRegister(w http.ResponseWriter, r *http.Request) {
	var in serverInput
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Name == "" {
		restError(w, http.StatusBadRequest, "invalid_field", "name", "invalid name: required")
		return
	}
	if !h.restAllowed(w, r, policy.RegisterService, in.Name) {
		return
	}
	rec := in.record(nil)
	if err := h.checkWrite(r, rec, in.Credential, nil); err != nil {
		h.restWriteError(w, r, in.Name, err)
		return
	}
	stored, err := h.app.PutWithCredential(r.Context(), rec, 0, in.Credential, in.Credential != nil)
	if err != nil {
		h.restWriteError(w, r, in.Name, err)
		return
	}
	w.Header().Set("ETag", etagOf(stored.Revision))
	w.Header().Set("Location", h.Prefix+"/api/servers/"+url.PathEscape(stored.Name))
	apiWriteJSON(w, http.StatusCreated, h.view(r, stored))
}

// checkWrite normalizes and validates a runtime record before it is written: the
// fields (Normalize), the upstream (runtime_upstreams), and that a backend_auth that
// needs a secret comes with one. cur is the record being replaced (nil when registering).
func (h *RegistryAPI) checkWrite(r *http.Request, rec *model.Server, cred *mcpregistry.Credential, cur *model.Server) error {
	if err := rec.Normalize(); err != nil {
		return err
	}
	if cur == nil || rec.Upstream != cur.Upstream {
		if err := h.app.CheckRuntimeUpstream(r.Context(), rec.Upstream); err != nil {
			return err
		}
	}
	// A credential sent along is validated and sealed by the write itself, before its
	// transaction.
	if cred == nil && rec.BackendAuth.Scheme != model.BackendAuthNone && (cur == nil || cur.BackendAuth != rec.BackendAuth) {
		return &model.FieldError{Field: "credential", Reason: fmt.Sprintf("backend_auth %s needs a credential: send {\"credential\": {\"value\": …}} with it (write-only)", rec.BackendAuth.Scheme)}
	}
	return nil
}

func (h *RegistryAPI) restUpdate(w http.ResponseWriter, r *http.Request, s *model.Server) {
	rev, present, err := ifMatch(r)
	switch {
	case err != nil:
		restError(w, http.StatusBadRequest, "invalid_field", "If-Match", err.Error())
		return
	case !present:
		restError(w, http.StatusPreconditionRequired, "precondition_required", "If-Match",
			`an update needs If-Match with the ETag from GET (or * to overwrite whatever is there), so that concurrent edits are not lost`)
		return
	}
	if !h.restAllowed(w, r, policy.ModifyService, s.Name) {
		return
	}
	var in serverInput
	if !decodeBody(w, r, &in) {
		return
	}
	stored, err := h.update(r, s, &in, rev)
	if err != nil {
		h.restWriteError(w, r, s.Name, err)
		return
	}
	w.Header().Set("ETag", etagOf(stored.Revision))
	apiWriteJSON(w, http.StatusOK, h.view(r, stored))
}

// update writes in over s (PUT and PATCH), conditional on rev.
func (h *RegistryAPI) update(r *http.Request, s *model.Server, in *serverInput, rev uint64) (*model.Server, error) {
	if in.Name != "" && in.Name != s.Name {
		return nil, &model.FieldError{Field: "name", Reason: "a server cannot be renamed (the body says " + strconv.Quote(in.Name) + "); register the new name and delete the old one"}
	}
	if s.Source == model.SourceConfig {
		return nil, fmt.Errorf("server %q is %w", s.Name, mcpregistry.ErrConfigManaged)
	}
	in.Name = s.Name
	rec := in.record(s)
	if err := h.checkWrite(r, rec, in.Credential, s); err != nil {
		return nil, err
	}
	if rec.BackendAuth.Scheme == model.BackendAuthNone && in.Credential == nil && s.BackendAuth.Scheme != model.BackendAuthNone {
		// Going to no authentication: the old secret has nothing left to do.
		in.Credential = &mcpregistry.Credential{}
	}
	return h.app.PutWithCredential(r.Context(), rec, rev, in.Credential, in.Credential != nil)
}

func (h *RegistryAPI) restDelete(w http.ResponseWriter, r *http.Request, s *model.Server) {
	rev, ok := optionalIfMatch(w, r)
	if !ok || !h.restAllowed(w, r, policy.ModifyService, s.Name) {
		return
	}
	if s.Source == model.SourceConfig {
		h.restWriteError(w, r, s.Name, fmt.Errorf("server %q is %w", s.Name, mcpregistry.ErrConfigManaged))
		return
	}
	if err := h.app.Delete(r.Context(), s.Name, rev); err != nil {
		h.restWriteError(w, r, s.Name, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *RegistryAPI) restToggle(w http.ResponseWriter, r *http.Request, s *model.Server) {
	rev, ok := optionalIfMatch(w, r)
	if !ok || !h.restAllowed(w, r, policy.ToggleService, s.Name) {
		return
	}
	enable := strings.HasSuffix(r.URL.Path, "/enable")
	stored, err := h.app.SetEnabled(r.Context(), s.Name, enable, rev)
	if err != nil {
		h.restWriteError(w, r, s.Name, err)
		return
	}
	w.Header().Set("ETag", etagOf(stored.Revision))
	apiWriteJSON(w, http.StatusOK, h.view(r, stored))
}

func (h *RegistryAPI) restCredential(w http.ResponseWriter, r *http.Request, s *model.Server) {
	if !h.restAllowed(w, r, policy.ModifyService, s.Name) {
		return
	}
	var c *mcpregistry.Credential
	if r.Method == http.MethodPut {
		c = new(mcpregistry.Credential)
		if !decodeBody(w, r, c) {
			return
		}
		if c.Value == "" && len(c.Headers) == 0 {
			restError(w, http.StatusBadRequest, "invalid_field", "credential.value", "invalid credential.value: required (to remove the credential, DELETE it)")
			return
		}
	}
	if err := h.app.SetCredential(r.Context(), s.Name, c); err != nil {
		h.restWriteError(w, r, s.Name, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// restConfirmCredential binds a suspended credential to the server's current upstream
// (POST …/credential/confirm). It sends a secret that someone else gave to a new place,
// so a modify right on this server alone is not enough (whoever moved the server has
// that): it takes modify_service for all servers. Replacing the credential needs only
// the server's own modify right, since the caller then supplies the secret.
func (h *RegistryAPI) restConfirmCredential(w http.ResponseWriter, r *http.Request, s *model.Server) {
	if !h.restAllowed(w, r, policy.ModifyService, s.Name) {
		return
	}
	if !h.callerMay(r.Context(), policy.ModifyService, "") {
		restError(w, http.StatusForbidden, "forbidden", "", "confirming a credential for a new upstream sends a secret someone else gave there: "+
			"it needs modify_service for all servers (or PUT a new credential for this server)")
		return
	}
	if !h.app.HasCredential(s.Name) {
		restError(w, http.StatusNotFound, "not_found", "credential", fmt.Sprintf("server %q has no backend credential to confirm", s.Name))
		return
	}
	if err := h.app.ConfirmCredential(r.Context(), s.Name); err != nil {
		h.restWriteError(w, r, s.Name, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// apiTools is the answer of GET /tools and POST /tools/refresh.
type apiTools struct {
	Server    string               `json:"server"`
	Health    apiHealth            `json:"health"`
	Tools     []model.ToolInfo     `json:"tools"`
	Prompts   []model.PromptInfo   `json:"prompts"`
	Resources []model.ResourceInfo `json:"resources"`
}

func (h *RegistryAPI) tools(ctx context.Context, s *model.Server, hl model.ServerHealth) apiTools {
	out := apiTools{Server: s.Name, Health: healthSummary(hl), Tools: h.app.VisibleTools(ctx, s),
		Prompts: mcpregistry.VisiblePrompts(ctx, s.Name, hl.Prompts), Resources: mcpregistry.VisibleResources(ctx, s.Name, hl.Resources)}
	if out.Tools == nil {
		out.Tools = []model.ToolInfo{}
	}
	if out.Prompts == nil {
		out.Prompts = []model.PromptInfo{}
	}
	if out.Resources == nil {
		out.Resources = []model.ResourceInfo{}
	}
	return out
}

func (h *RegistryAPI) restTools(w http.ResponseWriter, r *http.Request, s *model.Server) {
	hl, _ := h.app.Health(s.Name)
	apiWriteJSON(w, http.StatusOK, h.tools(r.Context(), s, hl))
}

func (h *RegistryAPI) restHealth(w http.ResponseWriter, r *http.Request, s *model.Server) {
	hl, _ := h.app.Health(s.Name)
	apiWriteJSON(w, http.StatusOK, map[string]any{"server": s.Name, "health": healthSummary(hl)})
}

// restCheckNow serves tools/refresh and health/check: both run one full check (health,
// then tools, prompts and resources) at once.
func (h *RegistryAPI) restCheckNow(w http.ResponseWriter, r *http.Request, s *model.Server) {
	if !h.restAllowed(w, r, policy.HealthCheckService, s.Name) {
		return
	}
	hl, err := h.app.RefreshNow(r.Context(), s.Name)
	if err != nil {
		h.restWriteError(w, r, s.Name, err)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/tools/refresh") {
		apiWriteJSON(w, http.StatusOK, h.tools(r.Context(), s, hl))
		return
	}
	apiWriteJSON(w, http.StatusOK, map[string]any{"server": s.Name, "health": healthSummary(hl)})
}

func (h *RegistryAPI) restSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var limit *int
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			n = -1 // not an integer: CheckSearch names the rule
		}
		limit = &n
	}
	text, n, err := mcpregistry.CheckSearch(q.Get("q"), limit)
	if err != nil {
		var fe *model.FieldError
		errors.As(err, &fe)
		field := fe.Field
		if field == "query" {
			field = "q" // the REST API's name for it
		}
		restError(w, http.StatusBadRequest, "invalid_field", field, field+" "+fe.Reason)
		return
	}
	withSchemas, _ := strconv.ParseBool(q.Get("include_schemas"))
	hits := h.app.SearchResults(h.app.SearchVisible(r.Context(), text, n), origin.Resolve(h.PublicURL, r)+h.GatewayPrefix, withSchemas)
	apiWriteJSON(w, http.StatusOK, map[string]any{"query": text, "hits": hits})
}
