// Package federation signs users in to the built-in authorization server through the
// company's OpenID provider (Keycloak, Entra ID, Okta, Cognito, Auth0, Google...).
//
// The authorization server is then the IdP's only OAuth client, with one fixed redirect
// URI, and every MCP client (IDE, CLI, desktop app) registers with the built-in server
// instead (DCR or client metadata documents), which most IdPs do not offer to them. The
// IdP's quirks (literal redirect-URI matching, group GUIDs, claim names) stay here.
//
// A sign-in is the authorization code flow with PKCE (S256), state and nonce; the ID
// token is verified against the IdP's published keys (issuer, audience, expiry,
// signature, nonce, azp), and the user's name and groups are read from its claims.
package federation

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Provider is one OpenID provider users may sign in with.
type Provider struct {
	// Name identifies the provider in URLs (<issuer>/login/<name>) and on user
	// records: lower-case letters, digits and '-', at most 32. Default "idp".
	Name string `json:"name,omitempty"`

	// DisplayName is the text of its sign-in button ("Sign in with <display_name>").
	// Default: Name.
	DisplayName string `json:"display_name,omitempty"`

	// Issuer is the provider's issuer identifier, exactly as its ID tokens name it
	// (OpenID Connect Discovery finds its endpoints and keys from it). https, or http
	// on loopback. Required.
	Issuer string `json:"issuer,omitempty"`

	// ClientID is the built-in server's client id at the provider. Register one
	// redirect URI there: <issuer of mcp_oauth_server>/login/<name>/callback. Required.
	ClientID string `json:"client_id,omitempty"`

	// ClientSecret authenticates the server at the provider's token endpoint
	// (client_secret_basic), normally from {env.*} or {file.*}. Absent: a public
	// client, protected by PKCE alone.
	ClientSecret string `json:"client_secret,omitempty"`

	// Scopes requested. Default: openid profile email. openid is always sent.
	Scopes []string `json:"scopes,omitempty"`

	// UsernameClaim names the ID-token claim that becomes the user's name on this
	// server (tokens' sub, audit logs, upstream connections). Default
	// preferred_username; when that is absent or not a usable name (1 to 64 letters,
	// digits, '.', '_', '@', '-': what the admin endpoint can address), email (only
	// with email_verified true, also when named here), then sub. A name stays bound to the provider's subject that first used
	// it, so a user who changes their claim at the IdP cannot take another's name.
	UsernameClaim string `json:"username_claim,omitempty"`

	// GroupsClaim is the ID-token claim path holding the user's groups: "groups"
	// (default), "cognito:groups", "roles", "realm_access.roles". A key that exists
	// verbatim wins; otherwise dots descend into nested objects. "none": the provider
	// sends no groups (Google); the users' groups are set on the admin endpoint and
	// kept across sign-ins.
	GroupsClaim string `json:"groups_claim,omitempty"`

	// GroupMap renames the provider's group values, e.g. Entra ID's group object ids
	// to names the policy uses. Values without an entry are kept as they are.
	GroupMap map[string]string `json:"group_map,omitempty"`

	// AllowedGroups, when set, lets only members of one of these groups (after
	// GroupMap) sign in; everyone else at the provider is refused with a page saying
	// so, and no user record is made for them. Default: anyone the provider signs in.
	AllowedGroups []string `json:"allowed_groups,omitempty"`

	// ReauthenticateAfter bounds how long a sign-in through this provider lasts:
	// refresh tokens stop refreshing that long after the user last signed in here, so
	// a user removed at the IdP, or moved out of a group, loses access within it.
	// Default 12h.
	ReauthenticateAfter caddy.Duration `json:"reauthenticate_after,omitempty"`

	// InactiveAfter bounds the personal gateway tokens of this provider's users: they
	// stop working once the user has not signed in here for this long, so the tokens
	// of someone who left the company die with their IdP account. Default 30d.
	InactiveAfter caddy.Duration `json:"inactive_after,omitempty"`
}

// NoGroups is the GroupsClaim of a provider that sends no groups.
const NoGroups = "none"

// Defaults of Provider.ReauthenticateAfter and Provider.InactiveAfter.
const (
	DefaultReauthenticateAfter = 12 * time.Hour
	DefaultInactiveAfter       = 30 * 24 * time.Hour
)

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// WithDefaults returns p with its defaults filled in and its fields checked.
func (p Provider) WithDefaults() (Provider, error) {
	if p.Name == "" {
		p.Name = "idp"
	}
	if !validName.MatchString(p.Name) {
		return p, fmt.Errorf("identity provider name %q: want lower-case letters, digits and '-', at most 32", p.Name)
	}
	if p.DisplayName == "" {
		p.DisplayName = p.Name
	}
	if len(p.DisplayName) > 64 {
		return p, fmt.Errorf("identity provider %s: display_name is longer than 64 bytes", p.Name)
	}
	if err := checkIssuer(p.Issuer); err != nil {
		return p, fmt.Errorf("identity provider %s: %v", p.Name, err)
	}
	if p.ClientID == "" {
		return p, fmt.Errorf("identity provider %s: client_id is required", p.Name)
	}
	if len(p.Scopes) == 0 {
		p.Scopes = []string{"openid", "profile", "email"}
	} else if !slices.Contains(p.Scopes, "openid") {
		p.Scopes = append([]string{"openid"}, p.Scopes...)
	}
	if p.UsernameClaim == "" {
		p.UsernameClaim = "preferred_username"
	}
	if p.GroupsClaim == "" {
		p.GroupsClaim = "groups"
	}
	if p.ReauthenticateAfter == 0 {
		p.ReauthenticateAfter = caddy.Duration(DefaultReauthenticateAfter)
	}
	if p.InactiveAfter == 0 {
		p.InactiveAfter = caddy.Duration(DefaultInactiveAfter)
	}
	if len(p.AllowedGroups) > 0 && p.GroupsClaim == NoGroups {
		return p, fmt.Errorf("identity provider %s: allowed_groups needs the provider's groups, and groups_claim is none", p.Name)
	}
	if p.ReauthenticateAfter < 0 || p.InactiveAfter < 0 {
		return p, fmt.Errorf("identity provider %s: reauthenticate_after and inactive_after must be positive", p.Name)
	}
	return p, nil
}
