package mcpui

import (
	"html/template"
	"net/http"

	"github.com/caddymcp/caddymcp/internal/htmlpage"
)

// pageData is what every page template reads.
type pageData struct {
	Title, Prefix, User, Groups string
	// Account is the built-in server's account page (personal tokens, sign out).
	Account string
	// The index page.
	Query   string
	Servers []serverRow
	Next    string // the last server shown when more follow
	Hits    []hitRow
	// A server's page.
	Server     *serverRow
	LastError  string
	Tools      []hitRow
	Configs    []configBlock
	TokenMode  bool
	Connected  bool
	ConnectURL string
	Notes      []string
	// The server page's actions: shown when the caller's policy grants them.
	CSRF      string
	MayToggle bool
	MayCheck  bool
	Done      string
	// A message page.
	Message string
}

// copyScript copies a configuration to the clipboard: the only script, allowed by its
// hash.
const copyScript = `document.addEventListener('click',function(e){var id=e.target.getAttribute('data-copy');if(!id)return;` +
	`navigator.clipboard.writeText(document.getElementById(id).textContent).then(function(){e.target.textContent='Copied'},function(){e.target.textContent='Select and copy by hand'})});`

var scriptCSP, styleCSP = htmlpage.HashSource(copyScript), htmlpage.HashSource(style)

const style = `body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem 1.5rem;color:#1a1a1a}` +
	`header{display:flex;justify-content:space-between;align-items:baseline;border-bottom:1px solid #ddd;margin-bottom:1rem}` +
	`table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #eee;vertical-align:top}` +
	`code,pre{font-family:ui-monospace,monospace;font-size:.85rem}pre{background:#f5f5f5;padding:.6rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}` +
	`.healthy{color:#0a7a2f}.unhealthy{color:#b00020}.auth_required,.unknown{color:#8a6d00}.small{color:#555;font-size:.9rem}` +
	`details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}button{padding:.3rem .8rem}input[type=search]{width:60%;padding:.3rem}`

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{{.Title}}</title><style>` + style + `</style></head><body>
<header><h1><a href="{{.Prefix}}/">MCP servers</a></h1>{{if .User}}<span class="small">Signed in as <b id="user">{{.User}}</b>{{if .Groups}} ({{.Groups}}){{end}}{{if .Account}} · <a href="{{.Account}}">your account</a>{{end}}</span>{{end}}</header>{{end}}
{{define "foot"}}<script>` + copyScript + `</script></body></html>{{end}}
{{define "message"}}{{template "head" .}}<h2>{{.Title}}</h2><p>{{.Message}}</p></body></html>{{end}}
{{define "index"}}{{template "head" .}}
<form method="get" action="{{.Prefix}}/"><input type="search" name="q" value="{{.Query}}" maxlength="256" placeholder="Find a tool: e.g. open a pull request" aria-label="Search tools"> <button type="submit">Search</button></form>
{{if .Query}}<h2>Results for “{{.Query}}”</h2>{{if .Hits}}<table id="hits"><tr><th>Tool</th><th>Server</th><th>What it does</th></tr>
{{range .Hits}}<tr><td>{{if .Tool}}<code>{{.Tool}}</code>{{else}}(the server){{end}}</td><td><a href="{{$.Prefix}}/servers/{{.Server}}">{{.Server}}</a></td><td>{{.Description}}</td></tr>
{{end}}</table>{{else}}<p>Nothing you may use matches.</p>{{end}}{{end}}
<h2>Your servers</h2>{{if .Servers}}<table id="servers"><tr><th>Server</th><th>Health</th><th>Tools</th><th>Description</th></tr>
{{range .Servers}}<tr><td><a href="{{$.Prefix}}/servers/{{.Name}}">{{.Name}}</a>{{if not .Enabled}} <span class="small">(disabled)</span>{{end}}</td><td class="{{.Health}}">{{.Health}}</td><td>{{.Tools}}</td><td>{{.Description}}{{range .Tags}} <span class="small">#{{.}}</span>{{end}}</td></tr>
{{end}}</table>{{if .Next}}<p><a id="next" href="{{.Prefix}}/?after={{.Next}}">More servers</a></p>{{end}}{{else}}<p>Your groups give you no server yet. Ask the platform team for access.</p>{{end}}
{{template "foot" .}}{{end}}
{{define "server"}}{{template "head" .}}{{with .Server}}
<h2>{{.Name}}{{if not .Enabled}} <span class="small">(disabled)</span>{{end}}</h2><p>{{.Description}}</p>
<p>MCP URL: <code id="mcp-url">{{.URL}}</code></p><p>Health: <span class="{{.Health}}" id="health">{{.Health}}</span>{{if $.LastError}} <span class="small">— {{$.LastError}}</span>{{end}}</p>{{end}}
{{if .Done}}<p role="status" id="done">Done: {{.Done}}.</p>{{end}}
{{if or .MayToggle .MayCheck}}<form method="post" id="actions"><input type="hidden" name="csrf" value="{{.CSRF}}">
{{if .MayToggle}}{{if .Server.Enabled}}<button type="submit" name="action" value="disable">Disable</button>{{else}}<button type="submit" name="action" value="enable">Enable</button>{{end}}{{end}}
{{if .MayCheck}}<button type="submit" name="action" value="check">Check now</button>{{end}}</form>{{end}}
{{if .ConnectURL}}<p>{{if .Connected}}Your account is connected. <a href="{{.ConnectURL}}">Manage the connection</a>{{else}}This server acts as you: <a id="connect" href="{{.ConnectURL}}">connect your account</a> before your assistant uses it.{{end}}</p>{{end}}
{{range .Notes}}<p class="small">{{.}}</p>{{end}}
{{if .Configs}}<h2>Add it to your assistant</h2>
<p class="small">{{if .TokenMode}}These read a personal gateway token from CADDYMCP_TOKEN (or ask for it). <a href="?">Sign in with OAuth instead</a>{{else}}Your assistant signs you in through the browser the first time it connects. <a href="?auth=token">Use a personal token instead</a>{{end}}</p>
{{range .Configs}}<details id="client-{{.Client}}"><summary>{{.Client}} — <code>{{.Path}}</code></summary>
<pre id="cfg-{{.Client}}">{{.Content}}</pre><button type="button" data-copy="cfg-{{.Client}}">Copy</button>
{{if .Command}}<p class="small">Or run:</p><pre id="cmd-{{.Client}}">{{.Command}}</pre><button type="button" data-copy="cmd-{{.Client}}">Copy</button>{{end}}
{{range .Notes}}<p class="small">{{.}}</p>{{end}}</details>
{{end}}{{end}}
<h2>Tools you may call</h2>{{if .Tools}}<table id="tools"><tr><th>Tool</th><th>What it does</th></tr>
{{range .Tools}}<tr><td><code>{{.Tool}}</code></td><td>{{.Description}}</td></tr>
{{end}}</table>{{else}}<p>None yet{{if .Server}}{{if eq .Server.Health "auth_required"}}: the server lists its tools once you connect your account{{end}}{{end}}.</p>{{end}}
{{template "foot" .}}{{end}}
`))

// render writes a page with headers that keep it out of frames, caches and other
// origins' reach: no script but the copy button's, no external asset.
func render(w http.ResponseWriter, status int, name string, d pageData) {
	// same-origin, not no-referrer: with no-referrer the browser sends "Origin: null"
	// with the page's own forms, and the same-origin check would have nothing to check.
	htmlpage.SetHeaders(w, "default-src 'none'; style-src "+styleCSP+"; script-src "+scriptCSP+"; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", "same-origin")
	w.WriteHeader(status)
	_ = pages.ExecuteTemplate(w, name, d)
}

func renderMessage(w http.ResponseWriter, status int, title, message string) {
	render(w, status, "message", pageData{Title: title, Message: message})
}
