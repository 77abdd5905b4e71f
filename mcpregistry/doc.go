// Package mcpregistry is the mcp_registry app, the bottom layer of caddymcp and its only
// caddy.App: it owns the store of approved MCP servers (package store) and the
// in-memory index the gateway routes from; applies writes (Put, SetEnabled, Delete,
// backend credentials sealed by its keyring) and reports them as events; checks every
// server's health and discovers its tools in the background (with list_changed
// watches and immediate checks after a write); keeps the ranked search index current
// (package search); imports server.json documents and syncs other registries' v0.1 APIs
// (package v01); purges expired tombstones; guards run-time upstreams against internal
// addresses; and serves the registry's own MCP server (list_servers, search_tools, …).
// Plain values live in package model; the HTTP handlers are in package registryapi.
package mcpregistry
