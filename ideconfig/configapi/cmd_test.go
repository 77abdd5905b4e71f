package configapi

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// caddy mcp-config fetches the caller's configuration and merges it into the client's
// file, keeping what the user configured and a backup.
func TestConfigCommand(t *testing.T) {
	base := startConfigAPI(t)
	gateway := strings.TrimSuffix(base, "/ide-config")
	home := t.TempDir()
	cursorFile := filepath.Join(home, ".cursor", "mcp.json")
	os.MkdirAll(filepath.Dir(cursorFile), 0o755)
	os.WriteFile(cursorFile, []byte(`{"mcpServers": {"local": {"command": "my-server"}}}`), 0o600)
	cmd := configCmd{client: "cursor", gateway: gateway, prefix: "/ide-config", auth: "oauth", write: true,
		token: testKeys["admins"], http: &http.Client{Timeout: 5 * time.Second}, home: home}
	var out, errOut bytes.Buffer
	if err := cmd.run(&out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	b, _ := os.ReadFile(cursorFile)
	for _, want := range []string{`"local"`, `"my-server"`, `"url": "https://mcp.example.com/servers/github/mcp"`, `"jira"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("merged file lacks %s:\n%s", want, b)
		}
	}
	if bak, _ := os.ReadFile(cursorFile + ".bak"); !strings.Contains(string(bak), "my-server") || strings.Contains(string(bak), "github") {
		t.Errorf("backup: %s", bak)
	}
	if !strings.Contains(out.String(), "wrote "+cursorFile+": github, jira") {
		t.Errorf("stdout %q", out.String())
	}

	// Printing, not writing; and a clear word without a token.
	out.Reset()
	cmd.write = false
	if err := cmd.run(&out, &errOut); err != nil || !strings.Contains(out.String(), `"mcpServers"`) {
		t.Errorf("print: %v %s", err, out.String())
	}
	cmd.token = ""
	if err := cmd.run(&out, &errOut); err == nil || !strings.Contains(err.Error(), "CADDYMCP_TOKEN") {
		t.Errorf("without a token: %v", err)
	}
	cmd.gateway = ""
	if err := cmd.run(&out, &errOut); err == nil || !strings.Contains(err.Error(), "--gateway") {
		t.Errorf("without a gateway: %v", err)
	}
}

// A client file that is a symbolic link (a dotfiles checkout) stays one.
func TestWriteKeepsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "dotfiles", "mcp.json")
	os.MkdirAll(filepath.Dir(target), 0o755)
	os.WriteFile(target, []byte("{}"), 0o600)
	link := filepath.Join(dir, "mcp.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := writeWithBackup(link, []byte(`{"mcpServers": {}}`)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(target); string(b) != `{"mcpServers": {}}` {
		t.Errorf("target: %s", b)
	}
}
