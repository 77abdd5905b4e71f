package oauthserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document): a
// client_id that is an https URL names a JSON document describing the client, fetched
// here with no redirects, a small size limit, short timeouts and no private addresses.
const (
	cimdMaxBytes     = 5 << 10
	cimdTimeout      = 5 * time.Second
	cimdDefaultCache = 5 * time.Minute
	cimdMaxCache     = 24 * time.Hour
	cimdCacheEntries = 1024
)

// cimdTLS lets tests trust their own CA.
type cimdTLS struct{ roots *x509.CertPool }

type cimdFetcher struct {
	httpc *http.Client
	allow []*net.IPNet

	mu    sync.Mutex
	cache map[string]cimdEntry
}

type cimdEntry struct {
	client  Client
	expires time.Time
}

func newCIMDFetcher(allow []*net.IPNet, roots *cimdTLS) *cimdFetcher {
	f := &cimdFetcher{allow: allow, cache: map[string]cimdEntry{}}
	dialer := &net.Dialer{Timeout: 3 * time.Second}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if roots != nil {
		tlsConfig.RootCAs = roots.roots
	}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would hide the address actually reached
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    3 * time.Second,
		ResponseHeaderTimeout:  3 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
		DisableCompression:     true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
			if err != nil {
				return nil, fmt.Errorf("resolving %s: %v", host, err)
			}
			// Every address must be public: a name resolving to one private address
			// among public ones could be raced into reaching it.
			for _, ip := range ips {
				if !f.ipAllowed(ip.IP) {
					return nil, fmt.Errorf("%s resolves to %s, a private, loopback or link-local address", host, ip.IP)
				}
			}
			if len(ips) == 0 {
				return nil, fmt.Errorf("%s has no address", host)
			}
			return dialer.DialContext(ctx, network, net.JoinHostPort(ips[0].IP.String(), port))
		},
	}
	f.httpc = &http.Client{
		Transport: transport,
		Timeout:   cimdTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return f
}

func (f *cimdFetcher) ipAllowed(ip net.IP) bool {
	for _, n := range f.allow {
		if n.Contains(ip) {
			return true
		}
	}
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		!cgnat.Contains(ip) && !ip.Equal(net.IPv4bcast)
}

var cgnat = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}

// validCIMDURL checks the shape a client_id URL must have: https, a path, no
// credentials, fragment, query or dot segments.
func validCIMDURL(id string) error {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" ||
		strings.Contains(id, "#") || u.RawQuery != "" || u.ForceQuery || u.Path == "" || u.Path == "/" {
		return errors.New("client_id URL must be https with a path and no credentials, query or fragment")
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return errors.New("client_id URL must not contain dot segments")
		}
	}
	if strings.ContainsFunc(id, isControlOrSpace) || strings.Contains(id, "\\") {
		return errors.New("client_id URL contains spaces, control characters or backslashes")
	}
	return nil
}

// cimdDocument is the part of a client metadata document this server uses.
type cimdDocument struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	ClientURI               string   `json:"client_uri"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope"`
	ClientSecret            *string  `json:"client_secret"`
}

// client returns the client a metadata document URL describes, from the cache or
// fetched.
func (f *cimdFetcher) client(ctx context.Context, id string, now time.Time) (Client, error) {
	f.mu.Lock()
	e, ok := f.cache[id]
	f.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.client, nil
	}
	if err := validCIMDURL(id); err != nil {
		return Client{}, fmt.Errorf("%w: %v", errUnknownClient, err)
	}
	c, maxAge, err := f.fetch(ctx, id)
	if err != nil {
		return Client{}, fmt.Errorf("%w: client metadata document: %v", errUnknownClient, err)
	}
	if maxAge > 0 {
		f.mu.Lock()
		if len(f.cache) >= cimdCacheEntries {
			for k, v := range f.cache {
				if now.After(v.expires) || len(f.cache) >= cimdCacheEntries {
					delete(f.cache, k)
				}
			}
		}
		f.cache[id] = cimdEntry{client: c, expires: now.Add(maxAge)}
		f.mu.Unlock()
	}
	return c, nil
}

func (f *cimdFetcher) fetch(ctx context.Context, id string) (Client, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, cimdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return Client{}, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.httpc.Do(req)
	if err != nil {
		return Client{}, 0, errors.Unwrap(err) // the *url.Error repeats the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Client{}, 0, fmt.Errorf("fetching it answered %s (redirects are not followed)", resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return Client{}, 0, fmt.Errorf("content type %q is not JSON", mt)
	}
	if resp.ContentLength > cimdMaxBytes {
		return Client{}, 0, fmt.Errorf("larger than %d bytes", cimdMaxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, cimdMaxBytes+1))
	if err != nil {
		return Client{}, 0, err
	}
	if len(body) > cimdMaxBytes {
		return Client{}, 0, fmt.Errorf("larger than %d bytes", cimdMaxBytes)
	}
	var doc cimdDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return Client{}, 0, fmt.Errorf("not a JSON object: %v", err)
	}
	if doc.ClientID != id {
		return Client{}, 0, errors.New("its client_id is not the URL it was fetched from")
	}
	if doc.ClientSecret != nil {
		return Client{}, 0, errors.New("a metadata document must not carry a client_secret")
	}
	if doc.TokenEndpointAuthMethod != "" && doc.TokenEndpointAuthMethod != authNone {
		return Client{}, 0, fmt.Errorf("token_endpoint_auth_method %q is not supported (only none)", doc.TokenEndpointAuthMethod)
	}
	meta := registrationRequest{
		RedirectURIs:  doc.RedirectURIs,
		GrantTypes:    doc.GrantTypes,
		ResponseTypes: doc.ResponseTypes,
		ClientName:    doc.ClientName,
		ClientURI:     doc.ClientURI,
		Scope:         doc.Scope,
		AuthMethod:    authNone,
	}
	c, err := meta.toClient()
	if err != nil {
		return Client{}, 0, err
	}
	c.ID = id
	if c.Name == "" {
		c.Name = id
	}
	return c, cacheLifetime(resp.Header.Get("Cache-Control")), nil
}

// cacheLifetime reads max-age from Cache-Control, capped; no-store and no-cache mean
// no caching, an absent header a short default.
func cacheLifetime(cc string) time.Duration {
	if cc == "" {
		return cimdDefaultCache
	}
	for part := range strings.SplitSeq(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			n, err := strconv.Atoi(strings.Trim(val, `"`))
			if err != nil || n <= 0 {
				return 0
			}
			if d := time.Duration(n) * time.Second; d < cimdMaxCache {
				return d
			}
			return cimdMaxCache
		}
	}
	return cimdDefaultCache
}

// clientIP is the caller's address as Caddy determined it (trusted proxies honoured).
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
