package configapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddymcp/caddymcp/ideconfig"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "mcp-config",
		Usage: "<client> --gateway <url> [--server <name>]... [--auth oauth|token] [--write [--file <path>]]",
		Short: "Fetches an MCP client's configuration from the gateway, and merges it into the client's file",
		Long: `
Fetches the configuration of an MCP client (vscode, cursor, claude-code, codex,
gemini-cli, windsurf, cline, roo-code, claude-desktop) for the servers you may use from
the gateway's mcp_ide_config endpoint, and prints it; with --write, merges it into the
client's file (servers you configured yourself stay; a backup of the file is kept as
<file>.bak).

  caddy mcp-config cursor --gateway https://mcp.example.com
  caddy mcp-config vscode --gateway https://mcp.example.com --server github --write --file .vscode/mcp.json
  caddy mcp-config codex --gateway https://mcp.example.com --auth token --write

When the endpoint needs a token, it is read from $CADDYMCP_TOKEN (a personal gateway
token from your account page).
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Args = cobra.ExactArgs(1)
			cmd.Flags().String("gateway", "", "the gateway's URL, e.g. https://mcp.example.com (required)")
			cmd.Flags().String("prefix", "/ide-config", "the mcp_ide_config handler's prefix")
			cmd.Flags().StringArray("server", nil, "only this server (repeatable)")
			cmd.Flags().String("auth", "oauth", "oauth: the client signs in itself; token: it reads a personal token")
			cmd.Flags().Bool("write", false, "merge into the client's file instead of printing")
			cmd.Flags().String("file", "", "the file to merge into (default: the client's own)")
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				f := cmd.Flags()
				c := configCmd{client: args[0], token: os.Getenv("CADDYMCP_TOKEN"), http: &http.Client{Timeout: 30 * time.Second}}
				c.gateway, _ = f.GetString("gateway")
				c.prefix, _ = f.GetString("prefix")
				c.servers, _ = f.GetStringArray("server")
				c.auth, _ = f.GetString("auth")
				c.write, _ = f.GetBool("write")
				c.file, _ = f.GetString("file")
				return c.run(os.Stdout, os.Stderr)
			}
		},
	})
}

type configCmd struct {
	client, gateway, prefix, auth, file, token string
	servers                                    []string
	write                                      bool
	http                                       *http.Client
	home                                       string // the user's home ("": os.UserHomeDir)
}

func (c configCmd) run(stdout, stderr io.Writer) error {
	if c.gateway == "" {
		return errors.New("--gateway is required, e.g. --gateway https://mcp.example.com")
	}
	u, err := url.Parse(strings.TrimRight(c.gateway, "/") + c.prefix + "/" + url.PathEscape(c.client))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("--gateway %q is not an http(s) URL", c.gateway)
	}
	q := url.Values{"auth": {c.auth}, "server": c.servers}
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %v", u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	var out struct {
		Path, Format, Content, Command, Error string
		Notes, Servers                        []string
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("%s answered %d, not a configuration (is mcp_ide_config at %s?)", u.Redacted(), resp.StatusCode, c.prefix)
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
			out.Error += "; set CADDYMCP_TOKEN to a personal token from your account page"
		}
		return fmt.Errorf("%s: %d: %s", u.Redacted(), resp.StatusCode, out.Error)
	}
	for _, n := range out.Notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	if !c.write {
		if out.Command != "" {
			fmt.Fprintln(stderr, "or run:", out.Command)
		}
		_, err := io.WriteString(stdout, out.Content)
		return err
	}
	path := c.file
	if path == "" {
		if path, err = c.expandHome(out.Path); err != nil {
			return err
		}
	}
	merged, err := mergeInto(path, out.Format, out.Content)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if err := writeWithBackup(path, merged); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s\n", path, strings.Join(out.Servers, ", "))
	return nil
}

func (c configCmd) expandHome(p string) (string, error) {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p, nil
	}
	home := c.home
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", err
		}
	}
	return filepath.Join(home, rest), nil
}

// mergeInto merges content into the file at path (which may not exist yet).
func mergeInto(path, format, content string) ([]byte, error) {
	existing, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	switch format {
	case "json":
		return ideconfig.MergeJSON(existing, []byte(content))
	case "toml":
		s, err := ideconfig.MergeTOML(string(existing), content)
		return []byte(s), err
	}
	return nil, fmt.Errorf("cannot merge a %q configuration", format)
}

// writeWithBackup replaces path with b (written aside, then renamed), keeping the
// file it replaces as path.bak. A path that is a symbolic link (a dotfiles checkout)
// stays one: the file it points to is replaced.
func writeWithBackup(path string, b []byte) error {
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil {
		if err := os.WriteFile(path+".bak", old, 0o600); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
