package oauthserver

import (
	"html/template"
	"net/http"
	"strings"

	"github.com/caddymcp/caddymcp/internal/htmlpage"
)

// The pages are self-contained: one inline style block allowed by its hash, no script,
// no external asset, so the CSP can forbid everything else.
const pageStyle = `body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}label{display:block;margin-top:1rem}input{width:100%;padding:.4rem;box-sizing:border-box}
button,a.button{margin-top:1.2rem;padding:.5rem 1.2rem;margin-right:.5rem}a.button{display:inline-block;border:1px solid #767676;border-radius:2px;color:inherit;text-decoration:none}.err{color:#b00020}.host{font-size:1.2rem;font-weight:bold}
.small{color:#555;font-size:.9rem}code{word-break:break-all}h2{font-size:1.1rem;margin-top:2rem}table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.2rem .4rem}`

var styleCSP = htmlpage.HashSource(pageStyle)

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{{.Title}}</title><style>{{.Style}}</style></head><body>{{end}}
{{define "error"}}{{template "head" .}}<h1>{{.Title}}</h1><p class="err">{{.Message}}</p><p class="small">You can close this window and start again from your application.</p></body></html>{{end}}
{{define "login"}}{{template "head" .}}<h1>Sign in</h1>
<p><b>{{.ClientName}}</b> wants to access <code>{{.Resource}}</code> on your behalf.</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
{{template "providers" .}}{{if not .NoPassword}}<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.RequestID}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="action" value="login">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>{{end}}</body></html>{{end}}
{{define "providers"}}{{range .Providers}}<p><a class="button" href="{{.URL}}">Sign in with {{.Name}}</a></p>
{{end}}{{end}}
{{define "signin"}}{{template "head" .}}<h1>Sign in</h1>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
{{template "providers" .}}{{if not .NoPassword}}<form method="post" action="{{.Action}}">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="return_to" value="{{.ReturnTo}}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>{{end}}</body></html>{{end}}
{{define "account"}}{{template "head" .}}<h1>Your account</h1>
<p>Signed in as <b>{{.User}}</b>{{if .Groups}} (groups: {{.Groups}}){{end}}.</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}{{if .Message}}<p role="status">{{.Message}}</p>{{end}}
{{if .NewToken}}<h2>New token{{if .NewTokenName}} “{{.NewTokenName}}”{{end}}</h2>
<p>Copy it now: it is shown only once.</p><p><code id="new-token">{{.NewToken}}</code></p>
<p class="small">Use it as <code>Authorization: Bearer &lt;token&gt;</code> with <code>{{.Resource}}</code>, e.g.<br>
<code>curl -H "Authorization: Bearer {{.NewToken}}" -H "Content-Type: application/json" -H "Accept: application/json, text/event-stream" -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' {{.Resource}}/&lt;server&gt;/mcp</code></p>{{end}}
<h2>Personal gateway tokens</h2>
<p class="small">For tools that cannot sign in with OAuth (curl, scripts). A token acts as you, with the groups you have when it is used.</p>
{{if .Tokens}}<table><tr><th>Name</th><th>Created</th><th>Expires</th><th></th></tr>
{{range .Tokens}}<tr><td>{{.Name}}</td><td>{{.Created}}</td><td>{{.Expires}}</td><td><form method="post" action="{{$.Action}}"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="id" value="{{.ID}}"><button type="submit" name="action" value="revoke">Revoke</button></form></td></tr>
{{end}}</table>{{else}}<p>You have no tokens.</p>{{end}}
<h2>New token</h2>
<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="name">What it is for</label><input id="name" name="name" maxlength="128" placeholder="laptop curl">
<label for="days">Valid for (days, at most {{.MaxDays}})</label><input id="days" name="days" type="number" min="1" max="{{.MaxDays}}" value="{{if lt .MaxDays 30}}{{.MaxDays}}{{else}}30{{end}}" required>
<button type="submit" name="action" value="mint">Create token</button></form>
{{if .ManagedBy}}<p class="small">You sign in through {{.ManagedBy}}; your password is managed there.</p>{{else}}<h2>Change password</h2>
<form method="post" action="{{.Action}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="username" value="{{.User}}" autocomplete="username">
<label for="current_password">Current password</label><input id="current_password" name="current_password" type="password" autocomplete="current-password" required>
<label for="new_password">New password</label><input id="new_password" name="new_password" type="password" autocomplete="new-password" minlength="12" required>
<label for="repeat_password">New password again</label><input id="repeat_password" name="repeat_password" type="password" autocomplete="new-password" minlength="12" required>
<button type="submit" name="action" value="password">Change password</button></form>{{end}}
<form method="post" action="{{.LogoutAction}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><button type="submit">Sign out</button></form>
</body></html>{{end}}
{{define "consent"}}{{template "head" .}}<h1>Allow access?</h1>
<p>Signed in as <b>{{.User}}</b>.</p>
<p>The application <b>{{.ClientName}}</b> ({{.ClientKind}}) asks to access</p><p><code>{{.Resource}}</code></p>
{{if .Scope}}<p>with scope <code>{{.Scope}}</code></p>{{end}}
<p>After you allow it, you are sent to</p><p class="host">{{.RedirectHost}}</p>
<p class="small">Allow only if you started this from that application. Your approval is remembered for this application and resource.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.RequestID}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" name="action" value="approve">Allow</button><button type="submit" name="action" value="deny">Deny</button></form></body></html>{{end}}
`))

type pageData struct {
	Title        string
	Style        template.CSS
	Message      string
	Error        string
	Action       string
	RequestID    string
	CSRF         string
	ClientName   string
	ClientKind   string
	Resource     string
	Scope        string
	User         string
	RedirectHost string
	// Sign-in and account pages.
	ReturnTo     string
	Groups       string
	Tokens       []tokenRow
	MaxDays      int
	NewToken     string
	NewTokenName string
	LogoutAction string
	// Providers are the identity providers' sign-in buttons; NoPassword hides the
	// password form.
	Providers  []providerLink
	NoPassword bool
	// ManagedBy names the identity provider of a user without a password.
	ManagedBy string
}

// renderPage writes an HTML page with headers that keep it out of frames and caches.
// formTarget is the origin a form on the page may end up redirecting to (Chrome
// applies form-action to the redirect after the POST).
func renderPage(w http.ResponseWriter, status int, name string, data pageData, formTarget string) {
	data.Style = template.CSS(pageStyle)
	formAction := "'self'"
	if formTarget != "" {
		formAction += " " + formTarget
	}
	htmlpage.SetHeaders(w, "default-src 'none'; style-src "+styleCSP+"; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'", "no-referrer")
	noStore(w)
	w.WriteHeader(status)
	pages.ExecuteTemplate(w, name, data)
}

func renderError(w http.ResponseWriter, status int, title, message string) {
	renderPage(w, status, "error", pageData{Title: title, Message: message}, "")
}

// cspSource reduces a URL to the origin form CSP accepts, refusing anything that could
// widen the policy.
func cspSource(scheme, host string) string {
	if strings.ContainsAny(host, " ;,'\"") || (scheme != "http" && scheme != "https") {
		return ""
	}
	return scheme + "://" + host
}
