package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxDiscoveryDocument bounds what is read of the provider's discovery document.
const maxDiscoveryDocument = 256 << 10

// endpoints are what a sign-in needs of the provider's discovery document.
type endpoints struct {
	authorization string
	token         string
	// issParameter: the provider returns iss in its authorization responses (RFC
	// 9207), so one without it, or with another, is refused.
	issParameter bool
}

// checkIssuer accepts an absolute https URL, or http on a loopback host, without
// query or fragment.
func checkIssuer(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("issuer %q is not an absolute URL without query or fragment", raw)
	}
	return checkScheme("issuer", u)
}

func checkScheme(what string, u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("%s %s must be https (http only on loopback)", what, u.Redacted())
}

// discover reads <issuer>/.well-known/openid-configuration: the document's issuer
// must equal the configured one exactly (OpenID Connect Discovery §4.3), and its
// endpoints must be https (http only on loopback).
func discover(ctx context.Context, client *http.Client, issuer string) (*endpoints, error) {
	docURL := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v", docURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryDocument+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v", docURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d", docURL, resp.StatusCode)
	}
	if len(body) > maxDiscoveryDocument {
		return nil, fmt.Errorf("%s is larger than %d KiB", docURL, maxDiscoveryDocument>>10)
	}
	var doc struct {
		Issuer                string `json:"issuer"`
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
		IssParameter          bool   `json:"authorization_response_iss_parameter_supported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%s is not a discovery document: %v", docURL, err)
	}
	if doc.Issuer != issuer {
		return nil, fmt.Errorf("%s names issuer %q, not %q", docURL, doc.Issuer, issuer)
	}
	ep := &endpoints{authorization: doc.AuthorizationEndpoint, token: doc.TokenEndpoint, issParameter: doc.IssParameter}
	for what, raw := range map[string]string{"authorization_endpoint": ep.authorization, "token_endpoint": ep.token} {
		u, err := url.Parse(raw)
		if raw == "" || err != nil || u.Host == "" {
			return nil, fmt.Errorf("%s: %s %q is not an absolute URL", docURL, what, raw)
		}
		if err := checkScheme(what, u); err != nil {
			return nil, errors.New(docURL + ": " + err.Error())
		}
	}
	return ep, nil
}
