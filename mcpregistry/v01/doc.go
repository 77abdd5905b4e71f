// Package v01 is the official MCP Registry API v0.1 on the wire: the server.json,
// ServerResponse and ServerList documents this registry publishes (Publisher renders a
// model.Server or a Tombstone as one), the lenient In* shapes it reads from other
// registries and from posted server.json documents, and the conversion of those into
// model.Server records (ToServer). It has no handlers and no state.
//
// Mapping of a server.json to a Server (ToServer):
//
//	name         <name prefix> + the part of the official name after the slash, lower-cased,
//	             every character outside a-z 0-9 . _ - replaced by '-', leading
//	             punctuation dropped, at most 63 characters
//	path         = name
//	upstream     the first remotes[] entry of type streamable-http (else the first sse)
//	             whose URL has no {template} variables
//	transport    that remote's type
//	description  the server.json description
//	enabled      true (when created; later imports keep what the operator set)
//	source       api: the record is a runtime record (it survives config reloads and is
//	             managed with the same writes as any API record); Origin tells it apart
//	origin       "<registry base URL>#<official name>" or "server.json#<official name>"
//
// Packages-only servers (npm, pypi, oci… run locally) cannot be proxied and are rejected.
// Headers a remote wants from its client (remotes[].headers) are not sent by the
// gateway: the server is imported and the headers are reported as a warning (an
// operator can add them as backend headers or a backend credential).
package v01
