package authn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// fetcher performs every outbound request of the package: bounded in time (a context
// deadline on top of whatever the client does) and in size (the body is read through a
// LimitReader and rejected when it is larger than the cap), body always closed.
type fetcher struct {
	ctx      context.Context // the Validator's lifetime
	client   *http.Client
	timeout  time.Duration
	maxBytes int64
	onError  func(string, error)
	count    atomic.Int64 // requests issued (tests)
}

var errTooLarge = errors.New("response body too large")

// reportedError marks an error already passed to Config.OnFetchError.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

func (f *fetcher) fetch(ctx context.Context, u string) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	body, hdr, err := f.do(ctx, u)
	if err != nil {
		err = fmt.Errorf("GET %s: %w", u, err)
	}
	return body, hdr, err
}

func (f *fetcher) do(ctx context.Context, u string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "caddymcp-authn")
	f.count.Add(1)
	res, err := f.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; never read an unbounded body.
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
		return nil, nil, fmt.Errorf("unexpected status %s", res.Status)
	}
	if res.ContentLength > f.maxBytes {
		return nil, nil, errTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, f.maxBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(body)) > f.maxBytes {
		return nil, nil, errTooLarge
	}
	return body, res.Header, nil
}

// Get implements jwk.HTTPClient (httprc's client interface) for the background refresh.
// httprc calls Get without a context and, in jwx v2.1.7, never closes the response body;
// this adapter fetches under the Validator's context, applies the bounds, closes the real
// body and hands httprc an in-memory copy.
func (f *fetcher) Get(u string) (*http.Response, error) {
	body, hdr, err := f.fetch(f.ctx, u)
	if err != nil {
		if f.onError != nil {
			f.onError(u, err)
		}
		return nil, &reportedError{err}
	}
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Header:        hdr,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
	}, nil
}

// discoveryURLs lists where the metadata of issuer may live, in the order tried:
//
//  1. OpenID Connect Discovery: <issuer>/.well-known/openid-configuration (what Keycloak,
//     Okta, Entra, Cognito, Auth0 and Google all serve);
//  2. RFC 8414 §3.1 path insertion: <origin>/.well-known/oauth-authorization-server<path>;
//  3. the OIDC variant of path insertion: <origin>/.well-known/openid-configuration<path>
//     (only differs from 1 when the issuer has a path).
//
// A terminating "/" of the issuer's path is removed first (both specs say so).
func discoveryURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, err
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	origin := u.Scheme + "://" + u.Host
	out := []string{origin + path + "/.well-known/openid-configuration"}
	out = append(out, origin+"/.well-known/oauth-authorization-server"+path)
	if path != "" {
		out = append(out, origin+"/.well-known/openid-configuration"+path)
	}
	return out, nil
}

// discover fetches the issuer's metadata and returns its jwks_uri. The document's issuer
// must equal the configured one exactly (OIDC Discovery §4.3, RFC 8414 §3.3), and an https
// issuer must publish an https jwks_uri.
func (f *fetcher) discover(ctx context.Context, issuer string) (string, error) {
	urls, err := discoveryURLs(issuer)
	if err != nil {
		return "", err
	}
	var errs []error
	for _, u := range urls {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		body, _, err := f.fetch(ctx, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var meta struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(body, &meta); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid metadata: %v", u, err))
			continue
		}
		if meta.Issuer != issuer {
			errs = append(errs, fmt.Errorf("%s: metadata issuer %q does not match %q", u, meta.Issuer, issuer))
			continue
		}
		if err := checkURL("jwks_uri", meta.JWKSURI); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", u, err))
			continue
		}
		if strings.HasPrefix(issuer, "https:") && !strings.HasPrefix(meta.JWKSURI, "https:") {
			errs = append(errs, fmt.Errorf("%s: jwks_uri %q is not https", u, meta.JWKSURI))
			continue
		}
		return meta.JWKSURI, nil
	}
	return "", fmt.Errorf("discovery for %s failed: %w", issuer, errors.Join(errs...))
}
