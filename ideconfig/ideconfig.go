// Package ideconfig generates ready-to-paste MCP client configurations for
// servers published through the caddymcp gateway.
//
// The generators are pure: no Caddy, no I/O, no clock. The same input always
// yields byte-identical output (JSON objects with sorted keys, TOML tables in
// server order with sorted inline keys, no trailing whitespace).
//
// Secrets never pass through this package. A per-user credential is described
// by a [Token] (which header, which scheme, which environment variable holds
// it) and each client receives the reference syntax it understands: VS Code
// prompts for it (${input:id}), Cursor/Windsurf/Roo Code read ${env:VAR},
// Claude Code and Gemini CLI expand ${VAR}, Codex reads the variable itself
// (bearer_token_env_var / env_http_headers). Clients with no documented
// expansion (Cline, Claude Desktop's env block) get a visible <VAR>
// placeholder and a note telling the user to replace it.
//
// Shapes and where they were checked (November 2026):
//
//   - VS Code: code.visualstudio.com/docs/copilot/reference/mcp-configuration
//     ("servers" + "inputs", type "http", promptString inputs with password).
//   - Cursor: cursor.com/docs/mcp as quoted by vendor guides (apilayer,
//     userjot, mescius): mcpServers.n.{url,headers}, ${env:VAR} interpolation.
//   - Claude Code: code.claude.com/docs/en/mcp (type "http", oauth.clientId,
//     oauth.callbackPort, ${VAR} expansion in .mcp.json; --header goes after
//     name and URL because -H is variadic).
//   - Codex: developers.openai.com/codex/mcp and codex-rs config
//     (url, bearer_token_env_var, http_headers, env_http_headers;
//     `codex mcp add NAME --url URL --bearer-token-env-var VAR`).
//   - Gemini CLI: geminicli.com/docs/tools/mcp-server and PRs
//     google-gemini/gemini-cli#15451, #20268: streamable HTTP is "httpUrl";
//     "url" means SSE, and a "type" key is rejected by older releases.
//   - Windsurf: docs.windsurf.com/windsurf/cascade/mcp as quoted by vendor
//     guides: mcpServers.n.{serverUrl,headers}, ${env:VAR} interpolation.
//   - Cline: Cline's zod schema (type literal "streamableHttp", url, headers,
//     disabled, autoApprove) and docs.cline.bot/mcp.
//   - Roo Code: docs.roocode.com MCP page: type "streamable-http",
//     alwaysAllow, ${env:VAR} (not re-checked against source this session).
//   - Claude Desktop: stdio only, bridged through mcp-remote; its README's
//     `--header "Authorization:${AUTH_HEADER}"` + env trick avoids the
//     Windows/Cursor argument-splitting bug with spaces in header values.
package ideconfig

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Client names an MCP client whose configuration can be generated.
type Client string

// Supported clients.
const (
	VSCode        Client = "vscode"
	Cursor        Client = "cursor"
	ClaudeCode    Client = "claude-code"
	Codex         Client = "codex"
	GeminiCLI     Client = "gemini-cli"
	Windsurf      Client = "windsurf"
	Cline         Client = "cline"
	RooCode       Client = "roo-code"
	ClaudeDesktop Client = "claude-desktop"
)

// Clients returns every supported client, in a stable order.
func Clients() []Client {
	return []Client{VSCode, Cursor, ClaudeCode, Codex, GeminiCLI, Windsurf, Cline, RooCode, ClaudeDesktop}
}

// Server is one gateway-published MCP endpoint as a client should see it.
type Server struct {
	// Name is the key the client files the server under: 1–63 of [a-z0-9._-].
	Name string
	// URL is the absolute http(s) Streamable HTTP endpoint,
	// e.g. https://gw.example.com/github/mcp.
	URL string
	// Headers are literal, non-secret header values sent on every request.
	Headers map[string]string
	// Token, if set, describes a per-user secret header.
	Token *Token
	// OAuth, if set, carries a pre-registered public client for clients that
	// can use one (only Claude Code can also pin the callback port).
	OAuth *OAuth
}

// Token describes a per-user credential the user supplies at paste time. The
// generators never see its value, only where it lives.
type Token struct {
	// Header is the header carrying the token; default "Authorization".
	Header string
	// Scheme prefixes the token ("Bearer" → "Bearer <token>"). When Header is
	// Authorization and Scheme is empty, "Bearer" is used. For other headers an
	// empty Scheme sends the raw token.
	Scheme string
	// EnvVar names the environment variable holding the raw token (no scheme),
	// e.g. CADDYMCP_TOKEN. Required: [A-Za-z_][A-Za-z0-9_]*.
	EnvVar string
	// Description is shown by clients that prompt (VS Code inputs).
	Description string
}

// OAuth is a pre-registered public OAuth client.
type OAuth struct {
	ClientID     string
	CallbackPort int // 0: let the client pick
}

// Output is one ready-to-paste configuration.
type Output struct {
	Client Client
	// Path is where the file goes (~ is the user's home directory).
	Path string
	// Format is "json" or "toml".
	Format string
	// Content is the file content (or the fragment to merge), ending in "\n".
	Content string
	// Command is a POSIX sh command line (one line per server) that registers
	// the same servers through the client's own CLI, or "" if it has none or
	// it cannot express the whole configuration.
	Command string
	// Notes are short human hints (where the file lives on each OS, what to
	// replace, what the client cannot do).
	Notes []string
}

// Generate renders the configuration for client c listing servers.
func Generate(c Client, servers []Server) (Output, error) {
	g, ok := generators[c]
	if !ok {
		return Output{}, fmt.Errorf("ideconfig: unknown client %q", string(c))
	}
	norm, err := validate(servers)
	if err != nil {
		return Output{}, err
	}
	out, err := g(norm)
	if err != nil {
		return Output{}, err
	}
	out.Client = c
	return out, nil
}

var generators = map[Client]func([]server) (Output, error){
	VSCode:        genVSCode,
	Cursor:        genCursor,
	ClaudeCode:    genClaudeCode,
	Codex:         genCodex,
	GeminiCLI:     genGemini,
	Windsurf:      genWindsurf,
	Cline:         genCline,
	RooCode:       genRoo,
	ClaudeDesktop: genClaudeDesktop,
}

// server is a validated Server with defaults applied and headers sorted.
type server struct {
	Name    string
	URL     string
	Headers []header // literal, sorted by name
	Token   *Token   // defaults applied
	OAuth   *OAuth
}

type header struct{ Name, Value string }

// tokenValue renders the token header value with ref standing for the token.
func (t *Token) value(ref string) string {
	if t.Scheme == "" {
		return ref
	}
	return t.Scheme + " " + ref
}

func validate(servers []Server) ([]server, error) {
	if len(servers) == 0 {
		return nil, errors.New("ideconfig: no servers")
	}
	seen := map[string]bool{}
	out := make([]server, 0, len(servers))
	for i, s := range servers {
		where := fmt.Sprintf("ideconfig: servers[%d]", i)
		if !validName(s.Name) {
			return nil, fmt.Errorf("%s.Name %q: must be 1-63 characters of a-z 0-9 . _ -", where, s.Name)
		}
		where = fmt.Sprintf("ideconfig: server %q", s.Name)
		if seen[s.Name] {
			return nil, fmt.Errorf("%s: duplicate name", where)
		}
		seen[s.Name] = true
		if err := validURL(s.URL); err != nil {
			return nil, fmt.Errorf("%s: URL %q: %v", where, s.URL, err)
		}
		n := server{Name: s.Name, URL: s.URL}
		names := map[string]bool{}
		for k, v := range s.Headers {
			if !validToken(k) {
				return nil, fmt.Errorf("%s: header name %q is not a valid HTTP token", where, k)
			}
			if err := validValue(v); err != nil {
				return nil, fmt.Errorf("%s: header %q value: %v", where, k, err)
			}
			lk := strings.ToLower(k)
			if names[lk] {
				return nil, fmt.Errorf("%s: header %q given twice (names are case-insensitive)", where, k)
			}
			names[lk] = true
			n.Headers = append(n.Headers, header{k, v})
		}
		sort.Slice(n.Headers, func(a, b int) bool { return n.Headers[a].Name < n.Headers[b].Name })
		if s.Token != nil {
			t := *s.Token
			if t.Header == "" {
				t.Header = "Authorization"
			}
			if !validToken(t.Header) {
				return nil, fmt.Errorf("%s: Token.Header %q is not a valid HTTP token", where, t.Header)
			}
			if names[strings.ToLower(t.Header)] {
				return nil, fmt.Errorf("%s: Token.Header %q also appears in Headers", where, t.Header)
			}
			if t.Scheme == "" && strings.EqualFold(t.Header, "Authorization") {
				t.Scheme = "Bearer"
			}
			if t.Scheme != "" && !validToken(t.Scheme) {
				return nil, fmt.Errorf("%s: Token.Scheme %q is not a valid auth scheme token", where, t.Scheme)
			}
			if !validEnvVar(t.EnvVar) {
				return nil, fmt.Errorf("%s: Token.EnvVar %q: must match [A-Za-z_][A-Za-z0-9_]*", where, t.EnvVar)
			}
			if err := validValue(t.Description); err != nil {
				return nil, fmt.Errorf("%s: Token.Description: %v", where, err)
			}
			n.Token = &t
		}
		if s.OAuth != nil {
			o := *s.OAuth
			if o.ClientID == "" {
				return nil, fmt.Errorf("%s: OAuth.ClientID is empty", where)
			}
			if err := validValue(o.ClientID); err != nil || strings.ContainsAny(o.ClientID, " \t") {
				return nil, fmt.Errorf("%s: OAuth.ClientID %q: must not contain whitespace or control characters", where, o.ClientID)
			}
			if o.CallbackPort < 0 || o.CallbackPort > 65535 {
				return nil, fmt.Errorf("%s: OAuth.CallbackPort %d: must be 0 (unset) or 1-65535", where, o.CallbackPort)
			}
			n.OAuth = &o
		}
		out = append(out, n)
	}
	return out, nil
}

func validName(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validURL(s string) error {
	if err := validValue(s); err != nil {
		return err
	}
	if strings.ContainsAny(s, " \t") {
		return errors.New("must not contain whitespace")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Host == "" || u.Opaque != "" {
		return errors.New("must be absolute with a host")
	}
	if u.User != nil {
		return errors.New("must not carry user info")
	}
	return nil
}

// validToken reports whether s is an RFC 9110 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validValue rejects CR, LF, NUL and other control characters except HTAB.
func validValue(s string) error {
	for _, r := range s {
		switch {
		case r == '\r' || r == '\n':
			return errors.New("must not contain CR or LF")
		case r < 0x20 && r != '\t', r == 0x7f:
			return fmt.Errorf("must not contain control character %U", r)
		}
	}
	return nil
}

func validEnvVar(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}
