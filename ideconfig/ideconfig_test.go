package ideconfig

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/caddymcp/caddymcp/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// fixture exercises every feature: literal headers, a token, OAuth, a name
// with a dot, a plain-http URL, and characters that need escaping.
func fixture() []Server {
	return []Server{
		{
			Name:  "github",
			URL:   "https://gw.example.com/github/mcp",
			Token: &Token{EnvVar: "CADDYMCP_TOKEN", Description: "caddymcp gateway token"},
			OAuth: &OAuth{ClientID: "ide-public-client", CallbackPort: 33418},
		},
		{
			Name:    "docs.internal",
			URL:     "http://localhost:8080/docs.internal/mcp",
			Headers: map[string]string{"X-Tenant": `team "a" \ it's $HOME & <b>`, "X-Api-Version": "2"},
			Token:   &Token{Header: "X-Api-Key", EnvVar: "DOCS_KEY"},
		},
	}
}

func plain() []Server {
	return []Server{{Name: "search", URL: "https://gw.example.com/search/mcp"}}
}

func renderGolden(o Output) string {
	var b strings.Builder
	b.WriteString("# path: " + o.Path + "\n# format: " + o.Format + "\n")
	b.WriteString("# --- content\n" + o.Content)
	b.WriteString("# --- command\n")
	if o.Command != "" {
		b.WriteString(o.Command + "\n")
	}
	b.WriteString("# --- notes\n")
	for _, n := range o.Notes {
		b.WriteString("- " + n + "\n")
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	cases := map[string][]Server{"full": fixture(), "plain": plain()}
	for _, c := range Clients() {
		for variant, servers := range cases {
			t.Run(string(c)+"/"+variant, func(t *testing.T) {
				o, err := Generate(c, servers)
				if err != nil {
					t.Fatal(err)
				}
				if o.Client != c {
					t.Errorf("Client = %q", o.Client)
				}
				checkWellFormed(t, o)
				got := renderGolden(o)
				path := filepath.Join("testdata", string(c)+"-"+variant+".golden")
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update)", err)
				}
				if got != string(want) {
					t.Errorf("output differs from %s (run go test -update and review the diff)\n--- got\n%s", path, got)
				}
				// Deterministic across calls (map iteration order is random).
				for i := 0; i < 5; i++ {
					again, _ := Generate(c, servers)
					if renderGolden(again) != got {
						t.Fatal("output not deterministic")
					}
				}
			})
		}
	}
}

func checkWellFormed(t *testing.T, o Output) {
	t.Helper()
	if !strings.HasSuffix(o.Content, "\n") {
		t.Error("content does not end in newline")
	}
	for i, line := range strings.Split(o.Content+o.Command, "\n") {
		if strings.TrimRight(line, " \t") != line {
			t.Errorf("line %d has trailing whitespace: %q", i, line)
		}
	}
	switch o.Format {
	case "json":
		var v any
		if err := json.Unmarshal([]byte(o.Content), &v); err != nil {
			t.Errorf("invalid JSON: %v", err)
		}
	case "toml":
		var v map[string]any
		if _, err := toml.Decode(o.Content, &v); err != nil {
			t.Errorf("invalid TOML: %v", err)
		}
	default:
		t.Errorf("format %q", o.Format)
	}
}

func TestShapes(t *testing.T) {
	get := func(c Client) map[string]any {
		o, err := Generate(c, fixture())
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(o.Content), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	path := func(v any, keys ...string) any {
		for _, k := range keys {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	checks := []struct {
		c    Client
		keys []string
		want any
	}{
		{VSCode, []string{"servers", "github", "type"}, "http"},
		{VSCode, []string{"servers", "github", "headers", "Authorization"}, "Bearer ${input:caddymcp-token}"},
		{Cursor, []string{"mcpServers", "github", "url"}, "https://gw.example.com/github/mcp"},
		{Cursor, []string{"mcpServers", "github", "headers", "Authorization"}, "Bearer ${env:CADDYMCP_TOKEN}"},
		{ClaudeCode, []string{"mcpServers", "github", "type"}, "http"},
		{ClaudeCode, []string{"mcpServers", "github", "oauth", "clientId"}, "ide-public-client"},
		{ClaudeCode, []string{"mcpServers", "github", "oauth", "callbackPort"}, 33418.0},
		{ClaudeCode, []string{"mcpServers", "docs.internal", "headers", "X-Api-Key"}, "${DOCS_KEY}"},
		{GeminiCLI, []string{"mcpServers", "github", "httpUrl"}, "https://gw.example.com/github/mcp"},
		{Windsurf, []string{"mcpServers", "github", "serverUrl"}, "https://gw.example.com/github/mcp"},
		{Cline, []string{"mcpServers", "github", "type"}, "streamableHttp"},
		{Cline, []string{"mcpServers", "github", "disabled"}, false},
		{RooCode, []string{"mcpServers", "github", "type"}, "streamable-http"},
		{ClaudeDesktop, []string{"mcpServers", "github", "command"}, "npx"},
		{ClaudeDesktop, []string{"mcpServers", "github", "env", "AUTH_HEADER"}, "Bearer <CADDYMCP_TOKEN>"},
	}
	for _, ck := range checks {
		if got := path(get(ck.c), ck.keys...); got != ck.want {
			t.Errorf("%s %v = %#v, want %#v", ck.c, ck.keys, got, ck.want)
		}
	}
	inputs := get(VSCode)["inputs"].([]any)
	if len(inputs) != 2 {
		t.Fatalf("vscode inputs = %v", inputs)
	}
	in := inputs[0].(map[string]any)
	if in["type"] != "promptString" || in["password"] != true || in["id"] != "caddymcp-token" {
		t.Errorf("vscode input = %v", in)
	}
	if _, ok := path(get(Cline), "mcpServers", "github", "autoApprove").([]any); !ok {
		t.Error("cline autoApprove not an array")
	}
	if _, ok := path(get(RooCode), "mcpServers", "github", "alwaysAllow").([]any); !ok {
		t.Error("roo alwaysAllow not an array")
	}
	args := path(get(ClaudeDesktop), "mcpServers", "docs.internal", "args").([]any)
	joined := strings.Join(func() []string {
		var s []string
		for _, a := range args {
			s = append(s, a.(string))
		}
		return s
	}(), " ")
	for _, want := range []string{"--allow-http", "X-Api-Key:${HEADER_X_API_KEY}", "X-Tenant:${HEADER_X_TENANT}"} {
		if !strings.Contains(joined, want) {
			t.Errorf("claude-desktop args %q lack %q", joined, want)
		}
	}
}

func TestCodexTOMLRoundTrip(t *testing.T) {
	o, err := Generate(Codex, fixture())
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		MCPServers map[string]struct {
			URL               string            `toml:"url"`
			BearerTokenEnvVar string            `toml:"bearer_token_env_var"`
			HTTPHeaders       map[string]string `toml:"http_headers"`
			EnvHTTPHeaders    map[string]string `toml:"env_http_headers"`
		} `toml:"mcp_servers"`
	}
	if _, err := toml.Decode(o.Content, &v); err != nil {
		t.Fatal(err)
	}
	gh := v.MCPServers["github"]
	if gh.URL != "https://gw.example.com/github/mcp" || gh.BearerTokenEnvVar != "CADDYMCP_TOKEN" {
		t.Errorf("github = %+v", gh)
	}
	d, ok := v.MCPServers["docs.internal"]
	if !ok {
		t.Fatalf("dotted name split into tables: %+v", v.MCPServers)
	}
	if want := fixture()[1].Headers; d.HTTPHeaders["X-Tenant"] != want["X-Tenant"] || d.HTTPHeaders["X-Api-Version"] != "2" {
		t.Errorf("http_headers = %q", d.HTTPHeaders)
	}
	if d.EnvHTTPHeaders["X-Api-Key"] != "DOCS_KEY" {
		t.Errorf("env_http_headers = %q", d.EnvHTTPHeaders)
	}
	if o.Command != "" {
		t.Errorf("codex command should be empty when headers are needed, got %q", o.Command)
	}
	p, _ := Generate(Codex, []Server{{Name: "a", URL: "https://x/mcp", Token: &Token{EnvVar: "T"}}})
	if p.Command != "codex mcp add a --url https://x/mcp --bearer-token-env-var T" {
		t.Errorf("codex command = %q", p.Command)
	}
}

func TestTOMLString(t *testing.T) {
	cases := map[string]string{
		`plain`:        `"plain"`,
		`q"b\`:         `"q\"b\\"`,
		"t\tn\nr\r":    `"t\tn\nr\r"`,
		"\x00\x1f\x7f": `"\u0000\u001F\u007F"`,
		"é✓":           `"é✓"`,
	}
	for in, want := range cases {
		if got := tomlString(in); got != want {
			t.Errorf("tomlString(%q) = %s, want %s", in, got, want)
		}
		var v struct{ K string }
		if _, err := toml.Decode("K = "+tomlString(in), &v); err != nil || v.K != in {
			t.Errorf("decode %s = %q, %v", tomlString(in), v.K, err)
		}
	}
	if tomlKey("a.b") != `"a.b"` || tomlKey("a_b-c") != "a_b-c" {
		t.Error("tomlKey")
	}
}

func TestShellQuoteRoundTrip(t *testing.T) {
	testenv.SkipIfShort(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("this test runs the generated commands through a real POSIX sh, which is not installed: %v", err)
	}
	for _, s := range []string{
		"Bearer it's $HOME `id` \"x\" \\n & ; | * ? ~ #",
		"'", "''", "", "a b", "plain-word_1.2", "$(echo pwned)", "é ✓",
	} {
		out, err := exec.Command(sh, "-c", "printf %s "+shQuote(s)).Output()
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if string(out) != s {
			t.Errorf("round trip %q -> %q (quoted %s)", s, out, shQuote(s))
		}
	}
}

// TestCommandsParse runs each generated command through sh with the client
// binary replaced by a function printing its arguments one per line, proving
// the words arrive intact (header value with ', $ and spaces included).
func TestCommandsParse(t *testing.T) {
	testenv.SkipIfShort(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("this test runs the generated commands through a real POSIX sh, which is not installed: %v", err)
	}
	value := `it's $HOME and  spaces`
	servers := []Server{{
		Name:    "svc",
		URL:     "https://gw.example.com/svc/mcp?x=1&y=2",
		Headers: map[string]string{"X-Note": value},
		Token:   &Token{EnvVar: "CADDYMCP_TOKEN"},
		OAuth:   &OAuth{ClientID: "cid", CallbackPort: 8765},
	}}
	want := map[Client][]string{
		ClaudeCode: {"mcp", "add", "--transport", "http", "--client-id", "cid", "--callback-port", "8765",
			"svc", "https://gw.example.com/svc/mcp?x=1&y=2", "--header", "X-Note: " + value, "--header", "Authorization: Bearer s3cr3t tok"},
		GeminiCLI: {"mcp", "add", "--transport", "http", "--header", "X-Note: " + value,
			"--header", "Authorization: Bearer s3cr3t tok", "svc", "https://gw.example.com/svc/mcp?x=1&y=2"},
	}
	for c, w := range want {
		o, err := Generate(c, servers)
		if err != nil {
			t.Fatal(err)
		}
		script := `claude() { for a in "$@"; do printf '%s\n' "$a"; done; }; gemini() { claude "$@"; }; ` + o.Command
		cmd := exec.Command(sh, "-c", script)
		cmd.Env = append(os.Environ(), "CADDYMCP_TOKEN=s3cr3t tok", "HOME=/home/nobody")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if strings.Join(got, "\x00") != strings.Join(w, "\x00") {
			t.Errorf("%s argv:\n got %q\nwant %q\ncommand: %s", c, got, w, o.Command)
		}
	}
	o, err := Generate(VSCode, []Server{{Name: "svc", URL: "https://gw/svc/mcp", Headers: map[string]string{"X-Note": value}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sh, "-c", `code() { printf '%s' "$2"; }; `+o.Command).Output()
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if err := json.Unmarshal(out, &e); err != nil || e["name"] != "svc" || e["headers"].(map[string]any)["X-Note"] != value {
		t.Errorf("code --add-mcp payload %s (%v)", out, err)
	}
}

func TestErrors(t *testing.T) {
	ok := func() Server { return Server{Name: "ok", URL: "https://gw/ok/mcp"} }
	cases := []struct {
		name    string
		client  Client
		servers []Server
		want    string
	}{
		{"unknown client", "emacs", []Server{ok()}, `unknown client "emacs"`},
		{"no servers", VSCode, nil, "no servers"},
		{"empty name", VSCode, []Server{{URL: "https://gw/x"}}, "servers[0].Name"},
		{"upper name", VSCode, []Server{{Name: "GitHub", URL: "https://gw/x"}}, `Name "GitHub"`},
		{"long name", VSCode, []Server{{Name: strings.Repeat("a", 64), URL: "https://gw/x"}}, "1-63"},
		{"slash name", VSCode, []Server{{Name: "a/b", URL: "https://gw/x"}}, `Name "a/b"`},
		{"duplicate", VSCode, []Server{ok(), ok()}, "duplicate name"},
		{"relative URL", VSCode, []Server{{Name: "a", URL: "/a/mcp"}}, "scheme must be http or https"},
		{"ftp URL", VSCode, []Server{{Name: "a", URL: "ftp://gw/a"}}, "scheme must be http or https"},
		{"no host", VSCode, []Server{{Name: "a", URL: "https:///a"}}, "host"},
		{"userinfo", VSCode, []Server{{Name: "a", URL: "https://u:p@gw/a"}}, "user info"},
		{"URL newline", VSCode, []Server{{Name: "a", URL: "https://gw/a\n"}}, "CR or LF"},
		{"header name", VSCode, []Server{{Name: "a", URL: "https://gw/a", Headers: map[string]string{"Bad Name": "v"}}}, `header name "Bad Name"`},
		{"header CRLF", VSCode, []Server{{Name: "a", URL: "https://gw/a", Headers: map[string]string{"X-A": "v\r\nX-B: w"}}}, `header "X-A" value: must not contain CR or LF`},
		{"header NUL", VSCode, []Server{{Name: "a", URL: "https://gw/a", Headers: map[string]string{"X-A": "v\x00"}}}, "control character"},
		{"header dup", VSCode, []Server{{Name: "a", URL: "https://gw/a", Headers: map[string]string{"X-A": "1", "x-a": "2"}}}, "case-insensitive"},
		{"token env", VSCode, []Server{{Name: "a", URL: "https://gw/a", Token: &Token{EnvVar: "1BAD"}}}, "Token.EnvVar"},
		{"token env empty", VSCode, []Server{{Name: "a", URL: "https://gw/a", Token: &Token{}}}, "Token.EnvVar"},
		{"token header clash", VSCode, []Server{{Name: "a", URL: "https://gw/a", Headers: map[string]string{"authorization": "x"}, Token: &Token{EnvVar: "T"}}}, "also appears in Headers"},
		{"token scheme", VSCode, []Server{{Name: "a", URL: "https://gw/a", Token: &Token{EnvVar: "T", Scheme: "Be arer"}}}, "Token.Scheme"},
		{"oauth id", ClaudeCode, []Server{{Name: "a", URL: "https://gw/a", OAuth: &OAuth{}}}, "OAuth.ClientID is empty"},
		{"oauth id space", ClaudeCode, []Server{{Name: "a", URL: "https://gw/a", OAuth: &OAuth{ClientID: "a b"}}}, "OAuth.ClientID"},
		{"oauth port", ClaudeCode, []Server{{Name: "a", URL: "https://gw/a", OAuth: &OAuth{ClientID: "c", CallbackPort: 70000}}}, "CallbackPort 70000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(tc.client, tc.servers)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestClients(t *testing.T) {
	cs := Clients()
	if len(cs) != len(generators) {
		t.Fatalf("Clients() has %d, generators %d", len(cs), len(generators))
	}
	for _, c := range cs {
		if generators[c] == nil {
			t.Errorf("no generator for %s", c)
		}
	}
}
