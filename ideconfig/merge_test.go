package ideconfig

import (
	"strings"
	"testing"
)

// Servers configured by hand stay; the generated ones replace those of the same name;
// VS Code's inputs merge by id; other settings are kept; JSONC is refused, not mangled.
func TestMergeJSON(t *testing.T) {
	existing := `{"servers": {"mine": {"type": "stdio", "command": "x"}, "github": {"type": "http", "url": "https://old"}},
	"inputs": [{"id": "keep", "type": "promptString"}, {"id": "caddymcp-token", "type": "promptString", "description": "old"}],
	"other": {"big": 12345678901234567890}}`
	gen, err := Generate(VSCode, []Server{{Name: "github", URL: "https://gw.example/github/mcp", Token: &Token{EnvVar: "CADDYMCP_TOKEN"}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := MergeJSON([]byte(existing), []byte(gen.Content))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{`"mine"`, `"command": "x"`, `"url": "https://gw.example/github/mcp"`, `"id": "keep"`, `12345678901234567890`} {
		if !strings.Contains(s, want) {
			t.Errorf("merged file lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, "https://old") || strings.Count(s, `"id": "caddymcp`) != 1 {
		t.Errorf("the old github entry or input stayed:\n%s", s)
	}
	if again, _ := MergeJSON(out, []byte(gen.Content)); string(again) != s {
		t.Errorf("merging twice changes the file:\n%s", again)
	}
	if out, err := MergeJSON(nil, []byte(gen.Content)); err != nil || !strings.Contains(string(out), "gw.example") {
		t.Errorf("new file: %v\n%s", err, out)
	}
	for _, bad := range []string{"// comment\n{}", `{"servers": {},}`, `[1]`, `{"servers": []}`} {
		if _, err := MergeJSON([]byte(bad), []byte(gen.Content)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Codex: the generated servers' tables (and sub-tables) are replaced, whatever their
// quoting; every other line is kept as written.
func TestMergeTOML(t *testing.T) {
	existing := `model = "o3"  # my model

[mcp_servers.mine]
command = "x"

[mcp_servers."github"]
url = "https://old"

[mcp_servers.github.env]
A = "1"

[profiles.fast]
model = "mini"
`
	gen, err := Generate(Codex, []Server{{Name: "github", URL: "https://gw.example/github/mcp"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := MergeTOML(existing, gen.Content)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`model = "o3"  # my model`, "[mcp_servers.mine]", "[profiles.fast]", `url = "https://gw.example/github/mcp"`} {
		if !strings.Contains(out, want) {
			t.Errorf("merged file lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "https://old") || strings.Contains(out, `A = "1"`) {
		t.Errorf("the old github tables stayed:\n%s", out)
	}
	if again, _ := MergeTOML(out, gen.Content); again != out {
		t.Errorf("merging twice changes the file:\n%s", again)
	}
}
