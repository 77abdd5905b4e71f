// Package cfargs reads Caddyfile arguments the same way in every caddymcp module.
package cfargs

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// One reads exactly one argument of the current directive line.
func One(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

// Duration reads exactly one argument as a Caddy duration ("1m30s", "2d").
func Duration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	v, err := One(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("bad duration %q: %v", v, err)
	}
	return caddy.Duration(dur), nil
}
