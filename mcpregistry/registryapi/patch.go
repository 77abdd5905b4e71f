package registryapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// patchAttempts bounds how often a PATCH without If-Match is re-applied to a record
// that changed while it was being applied.
const patchAttempts = 8

// restPatch applies a JSON merge patch (RFC 7396) to the writable fields of a server:
// members replace, null resets a field to its default, nested objects (backend_auth,
// forward_identity, credential) merge. With If-Match the patch applies only to that
// revision (412 otherwise); without it, it applies to the current record, and is
// re-applied if another write lands in between, so no concurrent change is lost.
func (h *RegistryAPI) restPatch(w http.ResponseWriter, r *http.Request, s *model.Server) {
	rev, present, err := ifMatch(r)
	if err != nil {
		restError(w, http.StatusBadRequest, "invalid_field", "If-Match", err.Error())
		return
	}
	if !h.restAllowed(w, r, policy.ModifyService, s.Name) {
		return
	}
	var patch map[string]any
	if !decodeBody(w, r, &patch) {
		return
	}
	if err := checkPatchKeys(patch, patchableFields, ""); err != nil {
		h.restWriteError(w, r, s.Name, err)
		return
	}
	for attempt := 1; ; attempt++ {
		expected := s.Revision
		if present {
			expected = rev
		}
		var in serverInput
		if err := mergedInput(s, patch, &in); err != nil {
			h.restWriteError(w, r, s.Name, err)
			return
		}
		stored, err := h.update(r, s, &in, expected)
		if err != nil && !present && attempt < patchAttempts && errors.Is(err, model.ErrRevisionMismatch) {
			// Re-apply to what won the race, read from the store: the index may not
			// show it yet, and re-reading the index would lose every retry.
			if cur, cerr := h.app.Committed(s.Name); cerr == nil && h.app.CanList(r.Context(), cur) {
				s = cur
				continue
			}
			err = model.ErrNotFound
		}
		if err != nil {
			h.restWriteError(w, r, s.Name, err)
			return
		}
		w.Header().Set("ETag", etagOf(stored.Revision))
		apiWriteJSON(w, http.StatusOK, h.view(r, stored))
		return
	}
}

// mergedInput applies patch to s as a PUT body would carry it (inputOf) and decodes the
// result into in, with the same checks as a PUT body (unknown fields and wrong types
// name the field).
func mergedInput(s *model.Server, patch map[string]any, in *serverInput) error {
	cur, err := json.Marshal(inputOf(s))
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(cur, &doc); err != nil {
		return err
	}
	merged, err := json.Marshal(mergePatch(doc, patch))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(merged))
	dec.DisallowUnknownFields()
	if err := dec.Decode(in); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return &model.FieldError{Field: typeErr.Field, Reason: "want a JSON " + jsonKind(typeErr.Type.Kind().String()) + ", got " + typeErr.Value}
		}
		if field, ok := unknownField(err); ok {
			return &model.FieldError{Field: field, Reason: "unknown field"}
		}
		return &model.FieldError{Field: "body", Reason: err.Error()}
	}
	return nil
}

// fieldSet names the members of a JSON object; a member's own fieldSet is nil for a
// scalar or list, and "*" admits any member name (header maps).
type fieldSet map[string]fieldSet

// patchableFields are the members a PATCH may name, exactly as spelled: JSON decoding
// would match "Upstream" to upstream, and merging would drop an unknown member, so the
// PATCH would be a silent no-op with a new revision.
var patchableFields = fieldSet{
	"name": nil, "path": nil, "upstream": nil, "transport": nil, "description": nil, "tags": nil, "enabled": nil,
	"gateway_token_header": nil,
	"backend_auth":         {"scheme": nil, "header": nil},
	"forward_identity":     {"user_header": nil, "groups_header": nil},
	"credential":           {"value": nil, "headers": {"*": nil}},
}

// checkPatchKeys refuses a member of patch that allowed does not name (a *FieldError
// naming it, dotted for nested members).
func checkPatchKeys(patch map[string]any, allowed fieldSet, prefix string) error {
	for k, v := range patch {
		sub, ok := allowed[k]
		if !ok {
			if _, anyName := allowed["*"]; anyName {
				continue
			}
			return &model.FieldError{Field: prefix + k, Reason: "unknown field (field names are case-sensitive)"}
		}
		if obj, isObj := v.(map[string]any); isObj && sub != nil {
			if err := checkPatchKeys(obj, sub, prefix+k+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

// mergePatch is RFC 7396 MergePatch(target, patch) for a patch that is an object.
func mergePatch(target, patch map[string]any) map[string]any {
	if target == nil {
		target = map[string]any{}
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(target, k)
		case map[string]any:
			tv, _ := target[k].(map[string]any)
			target[k] = mergePatch(tv, pv)
		default:
			target[k] = v
		}
	}
	return target
}
