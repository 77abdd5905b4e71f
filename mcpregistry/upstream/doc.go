// Package upstream decides where the gateway may send traffic for servers registered at
// run time. Rules (the app's runtime_upstreams) refuse cloud metadata services,
// link-local, unspecified and multicast addresses and Caddy's admin endpoint, with
// operator allow and deny lists; Check applies them to an upstream URL at registration,
// and Guard re-applies them to every connection a transport makes, so that DNS changes
// after registration cannot reach those addresses either.
package upstream
