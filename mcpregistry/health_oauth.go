package mcpregistry

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// Health of backend_auth oauth servers. A server that takes each user's own token
// (authorization_code, token_exchange) answers the registry's check, which has no
// user, with 401 and a Bearer challenge: that means "up, needs each user's sign-in"
// (HealthAuthRequired), not down. Its tools are not discovered: that would take some
// user's token, and lists seen with one user's token are not the registry's to show
// to everyone. A client_credentials server is checked like any other, with the
// gateway's own token.

// perUserOAuth reports whether s's upstream takes each caller's own token.
func (a *App) perUserOAuth(s *model.Server) bool {
	switch a.UpstreamGrant(s.Name) {
	case OAuthGrantAuthorizationCode, OAuthGrantTokenExchange:
		return true
	}
	return false
}

const probeInitialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"caddymcp-registry-health","version":"0.1.0"}}}`

// checkPerUserOAuth probes s without credentials: an initialize POST (a GET of the
// event stream for the legacy transport). A 401 with a Bearer challenge, or an answer
// without one (the upstream lets anyone initialize), is HealthAuthRequired.
func (a *App) checkPerUserOAuth(ctx context.Context, s *model.Server, h model.ServerHealth) model.ServerHealth {
	method, body := http.MethodPost, io.Reader(strings.NewReader(probeInitialize))
	if s.Transport == model.TransportSSE {
		method, body = http.MethodGet, nil
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Upstream, body)
	if err != nil {
		h.Status, h.LastError = model.HealthUnhealthy, "connect: the upstream URL is invalid"
		return h
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.health.client.Do(req)
	if err != nil {
		h.Status, h.LastError = model.HealthUnhealthy, describeCheckError("connect", err)
		return h
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && resp.StatusCode < 300 {
		// The upstream opened a session for the probe: end it.
		if del, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.Upstream, nil); err == nil {
			del.Header.Set("Mcp-Session-Id", sid)
			if r, err := a.health.client.Do(del); err == nil {
				r.Body.Close()
			}
		}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized && bearerChallenge(resp.Header.Values("WWW-Authenticate")):
		h.Status = model.HealthAuthRequired
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		h.Status = model.HealthAuthRequired
	default:
		h.Status, h.LastError = model.HealthUnhealthy, "connect: the upstream answered "+strconv.Itoa(resp.StatusCode)+" "+http.StatusText(resp.StatusCode)
		if resp.StatusCode == http.StatusUnauthorized {
			h.LastError += " without a Bearer challenge"
		}
	}
	return h
}

func bearerChallenge(values []string) bool {
	for _, v := range values {
		v = strings.TrimSpace(v)
		if len(v) >= 6 && strings.EqualFold(v[:6], "bearer") {
			return true
		}
	}
	return false
}

// machineTokenTransport adds the gateway's own upstream token (client_credentials) to
// the registry's requests to s.
type machineTokenTransport struct {
	base http.RoundTripper
	a    *App
	s    *model.Server
}

func (t machineTokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	v, err := t.a.UpstreamAuthorization(req.Context(), t.s, UpstreamCaller{})
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", v)
	return t.base.RoundTrip(req)
}
