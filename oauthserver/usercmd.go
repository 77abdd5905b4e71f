package oauthserver

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "mcp-user",
		Usage: "add|set|remove|list|token|tokens|revoke [<name>|<token id>] [--groups <g,...>] [--password-stdin] [--lifetime <d>] [--address <admin>]",
		Short: "Manages the local users and personal tokens of the built-in MCP authorization server",
		Long: `
Adds, changes, removes and lists the local users who sign in to the built-in
authorization server (mcp_oauth_server), through the admin API of the running
Caddy (admin.api.mcp_oauth). Users are stored in the mcp_registry store.

  caddy mcp-user add alice --groups eng,platform   # prints a new random password once
  caddy mcp-user add bob --password-stdin < pw.txt
  caddy mcp-user set alice --groups eng
  caddy mcp-user remove bob
  caddy mcp-user list
  caddy mcp-user token alice --lifetime 720h      # mints a personal gateway token, shown once
  caddy mcp-user tokens [alice]                   # lists tokens (never their secret)
  caddy mcp-user revoke <token id>

The admin address is --address, else the one in --config, else the default.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Args = cobra.RangeArgs(1, 2)
			cmd.Flags().String("groups", "", "comma-separated groups of the user (add, set)")
			cmd.Flags().Bool("password-stdin", false, "read the password from the first line of standard input (add, set)")
			cmd.Flags().String("lifetime", "", "lifetime of a personal token (token), e.g. 720h; default 30 days")
			cmd.Flags().String("address", "", "the admin API address, if not the default")
			cmd.Flags().StringP("config", "c", "", "configuration file to read the admin address from, if --address is not used")
			cmd.Flags().StringP("adapter", "a", "", "name of the config adapter (with --config)")
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				f := cmd.Flags()
				addr, _ := f.GetString("address")
				cfgFile, _ := f.GetString("config")
				adapter, _ := f.GetString("adapter")
				adminAddr, err := caddycmd.DetermineAdminAPIAddress(addr, nil, cfgFile, adapter)
				if err != nil {
					return err
				}
				op := userOp{action: args[0]}
				if len(args) > 1 {
					op.name = args[1]
				}
				op.lifetime, _ = f.GetString("lifetime")
				if f.Changed("groups") {
					g, _ := f.GetString("groups")
					op.groups = splitGroups(g)
				}
				if stdin, _ := f.GetBool("password-stdin"); stdin {
					line, err := bufio.NewReader(os.Stdin).ReadString('\n')
					if err != nil && !errors.Is(err, io.EOF) {
						return err
					}
					pw := strings.TrimRight(line, "\r\n")
					op.password = &pw
				}
				return op.run(func(method, uri string, body io.Reader) (*http.Response, error) {
					h := http.Header{"Content-Type": {"application/json"}}
					return caddycmd.AdminAPIRequest(adminAddr, method, uri, h, body)
				}, os.Stdout)
			}
		},
	})
}

// userOp is one mcp-user command.
type userOp struct {
	action   string // add, set, remove, list, token, tokens, revoke
	name     string // the user; the token id for revoke
	lifetime string // token
	groups   *[]string
	password *string
}

// adminRequest sends one request to the admin API.
type adminRequest func(method, uri string, body io.Reader) (*http.Response, error)

func (op userOp) run(send adminRequest, out io.Writer) error {
	if op.action != "list" && op.action != "tokens" && op.name == "" {
		return fmt.Errorf("mcp-user %s needs the user's name", op.action)
	}
	var method, uri string
	var body any
	generated := false
	switch op.action {
	case "list":
		method, uri = http.MethodGet, "/mcp_oauth/users"
	case "add":
		if op.password == nil {
			pw := rand.Text() // 26 characters of base32: 130 bits
			op.password, generated = &pw, true
		}
		method, uri = http.MethodPost, "/mcp_oauth/users"
		body = userInput{Name: op.name, Password: op.password, Groups: op.groups}
	case "set":
		if op.password == nil && op.groups == nil {
			return errors.New("mcp-user set needs --groups or --password-stdin")
		}
		method, uri = http.MethodPut, "/mcp_oauth/users/"+url.PathEscape(op.name)
		body = userInput{Password: op.password, Groups: op.groups}
	case "remove":
		method, uri = http.MethodDelete, "/mcp_oauth/users/"+url.PathEscape(op.name)
	case "token":
		method, uri = http.MethodPost, "/mcp_oauth/tokens"
		body = tokenInput{User: op.name, Name: "minted with caddy mcp-user", Lifetime: op.lifetime}
	case "tokens":
		method, uri = http.MethodGet, "/mcp_oauth/tokens?user="+url.QueryEscape(op.name)
	case "revoke":
		method, uri = http.MethodDelete, "/mcp_oauth/tokens/"+url.PathEscape(op.name)
	default:
		return fmt.Errorf("unknown mcp-user action %q: use add, set, remove, list, token, tokens or revoke", op.action)
	}
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(b)
	}
	resp, err := send(method, uri, reader)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var apiErr struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(answer, &apiErr) == nil && apiErr.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", apiErr.Error, resp.StatusCode)
		}
		return fmt.Errorf("admin API answered HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(answer))
	}
	switch {
	case op.action == "list":
		var users []userView
		if err := json.Unmarshal(answer, &users); err != nil {
			return err
		}
		for _, u := range users {
			fmt.Fprintf(out, "%s\t%s\n", u.Name, strings.Join(u.Groups, ","))
		}
	case op.action == "token":
		var v tokenView
		if err := json.Unmarshal(answer, &v); err != nil {
			return err
		}
		fmt.Fprintf(out, "token %s for %s, expires %s (shown once):\n%s\n", v.ID, v.User, v.Expires.Format("2006-01-02 15:04 MST"), v.Token)
	case op.action == "tokens":
		var tokens []tokenView
		if err := json.Unmarshal(answer, &tokens); err != nil {
			return err
		}
		for _, t := range tokens {
			fmt.Fprintf(out, "%s\t%s\t%s\texpires %s\n", t.ID, t.User, t.Name, t.Expires.Format("2006-01-02 15:04 MST"))
		}
	case generated:
		fmt.Fprintf(out, "added %s; password (shown once): %s\n", op.name, *op.password)
	default:
		fmt.Fprintf(out, "%s: done\n", op.action)
	}
	return nil
}

func splitGroups(s string) *[]string {
	out := []string{}
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return &out
}
