// Command caddy is Caddy with the caddymcp plugin and Caddy's standard modules built in.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddymcp/caddymcp"
)

func main() {
	caddycmd.Main()
}
