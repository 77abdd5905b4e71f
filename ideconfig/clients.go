package ideconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

type obj = map[string]any

// marshal renders v as 2-space-indented JSON with sorted object keys, without
// HTML escaping (placeholders such as <VAR> stay readable), ending in "\n".
func marshal(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("ideconfig: encoding JSON: %w", err)
	}
	return b.String(), nil
}

// headerMap returns the literal headers plus the token header rendered with
// ref (nil when there are none).
func headerMap(s server, ref func(t *Token) string) obj {
	if len(s.Headers) == 0 && s.Token == nil {
		return nil
	}
	m := obj{}
	for _, h := range s.Headers {
		m[h.Name] = h.Value
	}
	if s.Token != nil {
		m[s.Token.Header] = s.Token.value(ref(s.Token))
	}
	return m
}

func envRef(t *Token) string         { return "${env:" + t.EnvVar + "}" }
func dollarRef(t *Token) string      { return "${" + t.EnvVar + "}" }
func placeholderRef(t *Token) string { return "<" + t.EnvVar + ">" }

// mcpServers builds {"mcpServers": {name: entry(s)}}.
func mcpServers(servers []server, entry func(server) obj) (string, error) {
	m := obj{}
	for _, s := range servers {
		m[s.Name] = entry(s)
	}
	return marshal(obj{"mcpServers": m})
}

func withHeaders(e obj, h obj) obj {
	if h != nil {
		e["headers"] = h
	}
	return e
}

func hasToken(servers []server) bool {
	for _, s := range servers {
		if s.Token != nil {
			return true
		}
	}
	return false
}

func hasOAuth(servers []server) bool {
	for _, s := range servers {
		if s.OAuth != nil {
			return true
		}
	}
	return false
}

// tokenVars lists the distinct token environment variables, in server order.
func tokenVars(servers []server) []string {
	var vars []string
	seen := map[string]bool{}
	for _, s := range servers {
		if s.Token != nil && !seen[s.Token.EnvVar] {
			seen[s.Token.EnvVar] = true
			vars = append(vars, s.Token.EnvVar)
		}
	}
	return vars
}

func envNote(servers []server, how string) []string {
	if !hasToken(servers) {
		return nil
	}
	return []string{fmt.Sprintf("Set %s %s.", strings.Join(tokenVars(servers), ", "), how)}
}

func noOAuthNote(servers []server, client string) []string {
	if !hasOAuth(servers) {
		return nil
	}
	return []string{"No pre-registered OAuth client id is emitted for " + client + " (no verified setting); it falls back to dynamic client registration or the static token."}
}

// ---- VS Code ----

func inputID(t *Token) string {
	return strings.ReplaceAll(strings.ToLower(t.EnvVar), "_", "-")
}

func genVSCode(servers []server) (Output, error) {
	srv := obj{}
	var inputs []any
	seen := map[string]bool{}
	for _, s := range servers {
		srv[s.Name] = withHeaders(obj{"type": "http", "url": s.URL},
			headerMap(s, func(t *Token) string { return "${input:" + inputID(t) + "}" }))
		if t := s.Token; t != nil && !seen[inputID(t)] {
			seen[inputID(t)] = true
			desc := t.Description
			if desc == "" {
				desc = t.Header + " token for " + s.Name
			}
			inputs = append(inputs, obj{"type": "promptString", "id": inputID(t), "description": desc, "password": true})
		}
	}
	top := obj{"servers": srv}
	if len(inputs) > 0 {
		top["inputs"] = inputs
	}
	content, err := marshal(top)
	if err != nil {
		return Output{}, err
	}
	out := Output{Path: ".vscode/mcp.json", Format: "json", Content: content,
		Notes: []string{"Workspace file; for all workspaces run \"MCP: Open User Configuration\" and merge the same keys."}}
	if hasToken(servers) {
		out.Notes = append(out.Notes, "VS Code prompts once for each input and stores the value in its secret storage.")
	} else {
		var lines []string
		for _, s := range servers {
			e := withHeaders(obj{"name": s.Name, "type": "http", "url": s.URL}, headerMap(s, nil))
			b, err := json.Marshal(e)
			if err != nil {
				return Output{}, err
			}
			lines = append(lines, "code --add-mcp "+shQuote(string(b)))
		}
		out.Command = strings.Join(lines, "\n")
	}
	out.Notes = append(out.Notes, noOAuthNote(servers, "VS Code")...)
	return out, nil
}

// ---- Cursor ----

func genCursor(servers []server) (Output, error) {
	content, err := mcpServers(servers, func(s server) obj {
		return withHeaders(obj{"url": s.URL}, headerMap(s, envRef))
	})
	if err != nil {
		return Output{}, err
	}
	notes := []string{"Global file; a project may use .cursor/mcp.json instead."}
	notes = append(notes, envNote(servers, "in the environment Cursor is launched from")...)
	notes = append(notes, noOAuthNote(servers, "Cursor")...)
	return Output{Path: "~/.cursor/mcp.json", Format: "json", Content: content, Notes: notes}, nil
}

// ---- Claude Code ----

func genClaudeCode(servers []server) (Output, error) {
	content, err := mcpServers(servers, func(s server) obj {
		e := withHeaders(obj{"type": "http", "url": s.URL}, headerMap(s, dollarRef))
		if s.OAuth != nil {
			o := obj{"clientId": s.OAuth.ClientID}
			if s.OAuth.CallbackPort != 0 {
				o["callbackPort"] = s.OAuth.CallbackPort
			}
			e["oauth"] = o
		}
		return e
	})
	if err != nil {
		return Output{}, err
	}
	var lines []string
	for _, s := range servers {
		w := []string{"claude", "mcp", "add", "--transport", "http"}
		if s.OAuth != nil {
			w = append(w, "--client-id", shQuote(s.OAuth.ClientID))
			if s.OAuth.CallbackPort != 0 {
				w = append(w, "--callback-port", strconv.Itoa(s.OAuth.CallbackPort))
			}
		}
		w = append(w, shQuote(s.Name), shQuote(s.URL))
		for _, h := range s.Headers {
			w = append(w, "--header", shQuote(h.Name+": "+h.Value))
		}
		if t := s.Token; t != nil {
			w = append(w, "--header", shQuote(t.Header+": "+t.value(""))+`"${`+t.EnvVar+`}"`)
		}
		lines = append(lines, strings.Join(w, " "))
	}
	notes := []string{"Project-scoped file at the repository root; the command writes your local scope (add --scope project to write .mcp.json)."}
	if hasToken(servers) {
		notes = append(notes,
			fmt.Sprintf("The file references ${%s}, which Claude Code expands at startup; the command expands the variables once, when you run it, and stores the values.", strings.Join(tokenVars(servers), "}, ${")))
	}
	return Output{Path: ".mcp.json", Format: "json", Content: content, Command: strings.Join(lines, "\n"), Notes: notes}, nil
}

// ---- Codex ----

func genCodex(servers []server) (Output, error) {
	var b strings.Builder
	var lines []string
	var notes []string
	complete := true
	for i, s := range servers {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "[mcp_servers.%s]\n", tomlKey(s.Name))
		fmt.Fprintf(&b, "url = %s\n", tomlString(s.URL))
		var envHeaders []header
		bearer := ""
		if t := s.Token; t != nil {
			if strings.EqualFold(t.Header, "Authorization") && t.Scheme == "Bearer" {
				bearer = t.EnvVar
				fmt.Fprintf(&b, "bearer_token_env_var = %s\n", tomlString(t.EnvVar))
			} else {
				envHeaders = append(envHeaders, header{t.Header, t.EnvVar})
				if t.Scheme != "" {
					notes = append(notes, fmt.Sprintf("Codex sends %s verbatim as %s: set it to the full value, %q.", t.EnvVar, t.Header, t.value("<token>")))
				}
			}
		}
		if len(s.Headers) > 0 {
			fmt.Fprintf(&b, "http_headers = %s\n", tomlInline(s.Headers))
		}
		if len(envHeaders) > 0 {
			fmt.Fprintf(&b, "env_http_headers = %s\n", tomlInline(envHeaders))
		}
		if len(s.Headers) > 0 || len(envHeaders) > 0 {
			complete = false
		}
		w := []string{"codex", "mcp", "add", shQuote(s.Name), "--url", shQuote(s.URL)}
		if bearer != "" {
			w = append(w, "--bearer-token-env-var", bearer)
		}
		lines = append(lines, strings.Join(w, " "))
	}
	notes = append(notes, "A trusted project may use .codex/config.toml instead.")
	notes = append(notes, envNote(servers, "in the environment Codex runs in")...)
	if hasOAuth(servers) {
		notes = append(notes, "Codex cannot pin the OAuth callback port; with an IdP that matches redirect URIs literally, use the static token.")
	}
	out := Output{Path: "~/.codex/config.toml", Format: "toml", Content: b.String(), Notes: notes}
	if complete {
		out.Command = strings.Join(lines, "\n")
	} else {
		out.Notes = append(out.Notes, "`codex mcp add` cannot set extra headers; edit config.toml.")
	}
	return out, nil
}

// ---- Gemini CLI ----

func genGemini(servers []server) (Output, error) {
	content, err := mcpServers(servers, func(s server) obj {
		return withHeaders(obj{"httpUrl": s.URL}, headerMap(s, dollarRef))
	})
	if err != nil {
		return Output{}, err
	}
	var lines []string
	for _, s := range servers {
		w := []string{"gemini", "mcp", "add", "--transport", "http"}
		for _, h := range s.Headers {
			w = append(w, "--header", shQuote(h.Name+": "+h.Value))
		}
		if t := s.Token; t != nil {
			w = append(w, "--header", shQuote(t.Header+": "+t.value(""))+`"${`+t.EnvVar+`}"`)
		}
		w = append(w, shQuote(s.Name), shQuote(s.URL))
		lines = append(lines, strings.Join(w, " "))
	}
	notes := []string{
		"Project file; ~/.gemini/settings.json applies to every project. \"httpUrl\" is Streamable HTTP (\"url\" would mean SSE).",
	}
	notes = append(notes, envNote(servers, "in the environment (settings.json expands ${VAR}; the command expands it when run)")...)
	notes = append(notes, noOAuthNote(servers, "Gemini CLI")...)
	return Output{Path: ".gemini/settings.json", Format: "json", Content: content, Command: strings.Join(lines, "\n"), Notes: notes}, nil
}

// ---- Windsurf ----

func genWindsurf(servers []server) (Output, error) {
	content, err := mcpServers(servers, func(s server) obj {
		return withHeaders(obj{"serverUrl": s.URL}, headerMap(s, envRef))
	})
	if err != nil {
		return Output{}, err
	}
	notes := []string{"Windows: %USERPROFILE%\\.codeium\\windsurf\\mcp_config.json. Refresh the MCP panel after saving."}
	notes = append(notes, envNote(servers, "in the environment Windsurf is launched from")...)
	notes = append(notes, noOAuthNote(servers, "Windsurf")...)
	return Output{Path: "~/.codeium/windsurf/mcp_config.json", Format: "json", Content: content, Notes: notes}, nil
}

// ---- Cline ----

func genCline(servers []server) (Output, error) {
	content, err := mcpServers(servers, func(s server) obj {
		return withHeaders(obj{"type": "streamableHttp", "url": s.URL, "disabled": false, "autoApprove": []any{}},
			headerMap(s, placeholderRef))
	})
	if err != nil {
		return Output{}, err
	}
	notes := []string{"Open it from Cline's MCP Servers panel → Configure → Configure MCP Servers (VS Code globalStorage saoudrizwan.claude-dev/settings/; Cline CLI: ~/.cline/data/settings/)."}
	if hasToken(servers) {
		notes = append(notes, fmt.Sprintf("Replace <%s> with your token: Cline does not document variable expansion in this file.", strings.Join(tokenVars(servers), ">, <")))
	}
	notes = append(notes, noOAuthNote(servers, "Cline")...)
	return Output{Path: "cline_mcp_settings.json", Format: "json", Content: content, Notes: notes}, nil
}

// ---- Roo Code ----

func genRoo(servers []server) (Output, error) {
	content, err := mcpServers(servers, func(s server) obj {
		return withHeaders(obj{"type": "streamable-http", "url": s.URL, "disabled": false, "alwaysAllow": []any{}},
			headerMap(s, envRef))
	})
	if err != nil {
		return Output{}, err
	}
	notes := []string{"Project file; the global one is mcp_settings.json (Roo Code MCP panel → Edit Global MCP)."}
	notes = append(notes, envNote(servers, "in the environment VS Code is launched from")...)
	notes = append(notes, noOAuthNote(servers, "Roo Code")...)
	return Output{Path: ".roo/mcp.json", Format: "json", Content: content, Notes: notes}, nil
}

// ---- Claude Desktop ----

// headerEnvName picks the env var that carries header name through mcp-remote.
func headerEnvName(name string) string {
	if strings.EqualFold(name, "Authorization") {
		return "AUTH_HEADER"
	}
	var b strings.Builder
	b.WriteString("HEADER_")
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func genClaudeDesktop(servers []server) (Output, error) {
	content, err := mcpServers(servers, func(s server) obj {
		args := []any{"-y", "mcp-remote", s.URL, "--transport", "http-only"}
		if strings.HasPrefix(s.URL, "http:") {
			args = append(args, "--allow-http")
		}
		env := obj{}
		all := append([]header(nil), s.Headers...)
		if t := s.Token; t != nil {
			all = append(all, header{t.Header, t.value(placeholderRef(t))})
		}
		for _, h := range all {
			v := headerEnvName(h.Name)
			for n := 2; env[v] != nil; n++ {
				v = headerEnvName(h.Name) + "_" + strconv.Itoa(n)
			}
			env[v] = h.Value
			args = append(args, "--header", h.Name+":${"+v+"}")
		}
		e := obj{"command": "npx", "args": args}
		if len(env) > 0 {
			e["env"] = env
		}
		return e
	})
	if err != nil {
		return Output{}, err
	}
	notes := []string{
		"macOS: ~/Library/Application Support/Claude/claude_desktop_config.json; Windows: %APPDATA%\\Claude\\claude_desktop_config.json. Needs Node.js (npx).",
		"Header values travel in env and are referenced as Name:${VAR}, mcp-remote's documented workaround for values with spaces.",
	}
	if hasToken(servers) {
		notes = append(notes, fmt.Sprintf("Replace <%s> in env with your token: Claude Desktop does not expand variables there.", strings.Join(tokenVars(servers), ">, <")))
	}
	notes = append(notes, noOAuthNote(servers, "the mcp-remote bridge")...)
	return Output{Path: "claude_desktop_config.json", Format: "json", Content: content, Notes: notes}, nil
}
