package mcpgateway

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
)

// Sessions belong to the caller who opened them. The session id a client sees (the
// streamable HTTP Mcp-Session-Id, the legacy transport's sessionId query) is the
// upstream's own id sealed with AES-256-GCM, the additional data binding it to the
// caller (issuer and subject; the same fixed value for everyone when auth is off), the
// server and the transport. Any gateway instance holding the key checks and unwraps
// it without shared state; the upstream gets its own id back and never sees the sealed
// one. A sealed id presented by another caller, for another server, forged or garbled
// opens to nothing and is answered exactly like an unknown session: 404.
//
// The upstream's id never reaches the client, the access log or the audit log: those
// only ever see the request's and response's headers, which carry the sealed form.

const (
	sessionVersion = 1
	nonceSize      = 12
	tagSize        = 16
	// maxUpstreamSessionID bounds what an upstream may use as a session id (or, for the
	// legacy transport, as its endpoint's query). Longer ids fail the upstream's answer
	// with a 502 rather than producing a client-visible id past maxSealedSessionID.
	maxUpstreamSessionID = 256
	// maxSealedSessionID bounds the session id a client may send.
	maxSealedSessionID = (1+nonceSize+maxUpstreamSessionID+tagSize+2)/3*4 + 4
)

// sessionInfo is the HKDF info for session keys, so a key derived from the registry's
// encryption_key is never the key that seals credentials.
const sessionInfo = "caddymcp mcp_gateway session id v1"

// sessionSealer seals and opens session ids. Built once per provision; the AEAD is safe
// for concurrent use.
type sessionSealer struct {
	aead cipher.AEAD
}

// sessionBinding is what a session id is bound to.
type sessionBinding struct {
	issuer, subject string // both "" when auth is off
	server          string
	legacy          bool // the HTTP+SSE transport (sessionId query) rather than Mcp-Session-Id
}

func newSessionSealer(key []byte) (*sessionSealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sessionSealer{aead: aead}, nil
}

// processSessionKey is the key of a gateway configured with neither session_key nor a
// registry encryption_key: random, shared by every config this process loads, so
// sessions survive config reloads (but not restarts, nor a move to another instance).
var processSessionKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crypto/rand)
	return k
})

// sessionKey picks the session key: the gateway's session_key; else one derived (HKDF)
// from the registry's encryption_key; else processSessionKey. Placeholders in both are
// resolved here. derived reports which source was used, for the log.
func sessionKey(gatewayKey, registryKey string) (key []byte, source string, err error) {
	repl := caddy.NewReplacer()
	if gatewayKey != "" {
		k, err := parseSessionKey(repl.ReplaceKnown(gatewayKey, ""))
		if err != nil {
			return nil, "", fmt.Errorf("session_key: %v", err)
		}
		return k, "session_key", nil
	}
	if registryKey != "" {
		secret, err := parseSessionKey(repl.ReplaceKnown(registryKey, ""))
		if err != nil {
			// The registry reports its own key errors; derive nothing from a bad one.
			return nil, "", fmt.Errorf("deriving the session key from the registry's encryption_key: %v", err)
		}
		k, err := hkdf.Key(sha256.New, secret, nil, sessionInfo, 32)
		if err != nil {
			return nil, "", err
		}
		return k, "registry encryption_key", nil
	}
	return processSessionKey(), "random per process", nil
}

// parseSessionKey reads 32 bytes in hex or base64 (standard or URL, padded or not), the
// format of the registry's encryption_key.
func parseSessionKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("must be 32 bytes in base64 or hex (generate one with: openssl rand -base64 32)")
}

// appendAAD appends the additional data of b: each field length-prefixed, so no two
// bindings encode alike.
func appendAAD(dst []byte, b *sessionBinding) []byte {
	var transport byte = 'h'
	if b.legacy {
		transport = 's'
	}
	dst = append(dst, sessionVersion, transport)
	for _, f := range [...]string{b.server, b.issuer, b.subject} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

var errSessionTooLong = errors.New("upstream session id longer than " + fmt.Sprint(maxUpstreamSessionID) + " bytes")

// sessionScratch holds the buffers of one seal or open, pooled: the AEAD is called
// through an interface, so stack arrays would escape and cost an allocation each.
type sessionScratch struct {
	aad  [128]byte
	raw  [maxSealedSessionID]byte // the sealed id as text
	data [maxSealedSessionID]byte // version, nonce, ciphertext and tag
}

var sessionScratchPool = sync.Pool{New: func() any { return new(sessionScratch) }}

// seal returns the client-visible id for the upstream's id.
func (s *sessionSealer) seal(upstream string, b *sessionBinding) (string, error) {
	if len(upstream) > maxUpstreamSessionID {
		return "", errSessionTooLong
	}
	sc := sessionScratchPool.Get().(*sessionScratch)
	defer sessionScratchPool.Put(sc)
	aad := appendAAD(sc.aad[:0], b)
	const head = 1 + nonceSize
	sc.data[0] = sessionVersion
	_, _ = rand.Read(sc.data[1:head])
	n := copy(sc.data[head:], upstream)
	// Sealed in place: dst ends where the plaintext starts.
	out := s.aead.Seal(sc.data[:head], sc.data[1:head], sc.data[head:head+n], aad)
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// open returns the upstream's id for a client-visible id, or false for an id that was
// not sealed by this key for b (another caller's, another server's, garbled, too long).
func (s *sessionSealer) open(sealed string, b *sessionBinding) (string, bool) {
	if len(sealed) > maxSealedSessionID || len(sealed) < base64.RawURLEncoding.EncodedLen(1+nonceSize+tagSize) {
		return "", false
	}
	sc := sessionScratchPool.Get().(*sessionScratch)
	defer sessionScratchPool.Put(sc)
	src := sc.raw[:copy(sc.raw[:], sealed)]
	n, err := base64.RawURLEncoding.Strict().Decode(sc.data[:], src)
	const head = 1 + nonceSize
	if err != nil || n < head+tagSize || sc.data[0] != sessionVersion {
		return "", false
	}
	aad := appendAAD(sc.aad[:0], b)
	plain, err := s.aead.Open(sc.data[head:head], sc.data[1:head], sc.data[head:n], aad)
	if err != nil {
		return "", false
	}
	return string(plain), true
}

// upstreamSessionKey and upstreamQueryKey are the replacer variables under which
// checkSession leaves the upstream's session id (streamable HTTP) or its endpoint query
// (legacy) for the outbound request.
const (
	upstreamSessionKey = "mcp_gateway.upstream_session"
	upstreamQueryKey   = "mcp_gateway.upstream_query"
)

// upstreamSession is the unsealed id; its String keeps it out of any placeholder use.
type upstreamSession string

func (upstreamSession) String() string { return "[session]" }

// bindingFor is the binding of a session opened or used by request r: the caller
// authenticate recorded (anonymous when auth is off) and the server ServeHTTP routed to.
func bindingFor(r *http.Request, legacy bool) sessionBinding {
	b := sessionBinding{legacy: legacy}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return b
	}
	b.server, _ = repl.GetString("http.mcp.server")
	if v, _ := repl.Get(callerKey); v != nil {
		if c, ok := v.(*callerIdentity); ok {
			b.issuer, b.subject = c.issuer, c.subject
			if b.subject == "" {
				// A machine token (client credentials) names a client, not a user.
				b.subject = "client:" + c.clientID
			}
		}
	}
	return b
}

// checkSession unwraps the session id of a request to the endpoint ep, leaving the
// upstream's for the outbound request. A session id that does not open for this caller
// and server is answered 404, like a session the upstream does not know; so is a legacy
// POST without one. It returns false when it answered.
func (g *Gateway) checkSession(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, ep endpoint) bool {
	if g.sessions == nil {
		return true
	}
	var sealed string
	switch ep {
	case endpointMCP:
		vals := r.Header["Mcp-Session-Id"]
		switch len(vals) {
		case 0:
			return true
		case 1:
			sealed = vals[0]
		default:
			writeRPCError(w, http.StatusBadRequest, "", codeRequestRefused, "several Mcp-Session-Id headers")
			return false
		}
	case endpointMessage:
		q, err := url.ParseQuery(r.URL.RawQuery)
		if vals := q["sessionId"]; err == nil && len(vals) == 1 {
			sealed = vals[0]
			repl.Set("http.mcp.session_id", sealed)
		}
	default:
		return true
	}
	b := bindingFor(r, ep != endpointMCP)
	up, ok := g.sessions.open(sealed, &b)
	if !ok {
		writeRPCError(w, http.StatusNotFound, "", codeUnknownSession, "unknown MCP session: it expired, was never opened, or belongs to another caller or server; start a new one")
		return false
	}
	key := upstreamSessionKey
	if ep == endpointMessage {
		key = upstreamQueryKey
	}
	repl.Set(key, upstreamSession(up))
	return true
}

// upstreamSessionOf is the unsealed session id checkSession found for r ("" if none).
func upstreamSessionOf(r *http.Request) string { return unsealedOf(r, upstreamSessionKey) }

// upstreamQueryOf is the unsealed legacy endpoint query checkSession found for r.
func upstreamQueryOf(r *http.Request) string { return unsealedOf(r, upstreamQueryKey) }

func unsealedOf(r *http.Request, key string) string {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return ""
	}
	v, _ := repl.Get(key)
	s, _ := v.(upstreamSession)
	return string(s)
}

// sealResponseSession replaces the upstream's Mcp-Session-Id in its response headers h
// with the sealed id the client of request in will see.
func (g *Gateway) sealResponseSession(in *http.Request, h http.Header) error {
	vals := h["Mcp-Session-Id"]
	if len(vals) == 0 || g.sessions == nil {
		return nil
	}
	if len(vals) > 1 {
		return errors.New("upstream sent several Mcp-Session-Id headers")
	}
	// Servers that echo the session id on every answer (the TypeScript SDK's do) get
	// the client's own sealed id back: a fresh seal (new nonce) would look like a new
	// session, which clients reject as a mismatch.
	if up := upstreamSessionOf(in); up != "" && up == vals[0] {
		if repl, _ := in.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); repl != nil {
			if sealed, _ := repl.GetString("http.mcp.session_id"); sealed != "" {
				h["Mcp-Session-Id"] = []string{sealed}
				return nil
			}
		}
	}
	b := bindingFor(in, false)
	sealed, err := g.sessions.seal(vals[0], &b)
	if err != nil {
		return err
	}
	h["Mcp-Session-Id"] = []string{sealed}
	return nil
}

// sealEndpointQuery is the query of the gateway's own message URI in a legacy endpoint
// event: the upstream's query, sealed, as sessionId. Whatever the upstream names its
// session parameter (sessionId, session_id, …), the client sees only the sealed form
// and must send it back.
func (g *Gateway) sealEndpointQuery(upstreamQuery string, b *sessionBinding) (string, error) {
	if g.sessions == nil {
		return upstreamQuery, nil
	}
	sealed, err := g.sessions.seal(upstreamQuery, b)
	if err != nil {
		return "", err
	}
	return "sessionId=" + sealed, nil
}
