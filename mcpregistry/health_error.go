package mcpregistry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// describeCheckError says why a health check step failed in the gateway's own words.
// Upstream text never passes: an upstream may echo the credential it was sent (a 401
// body repeating the bad token), and list-only callers see last_error but not the
// upstream URL, so neither the upstream's messages nor its address appear.
func describeCheckError(step string, err error) string {
	return step + ": " + checkErrorKind(err)
}

// httpStatusTexts are the reason phrases go-sdk puts in the errors of a non-2xx
// answer, longest first so that "Not Found" does not shadow "Not Acceptable".
var httpStatusTexts = func() []int {
	var codes []int
	for c := 400; c < 600; c++ {
		if http.StatusText(c) != "" {
			codes = append(codes, c)
		}
	}
	return codes
}()

func checkErrorKind(err error) string {
	var (
		rpcErr      *jsonrpc.Error
		dnsErr      *net.DNSError
		certErr     *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		recordErr   tls.RecordHeaderError
	)
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case strings.Contains(msg, "refused by runtime_upstreams"):
		return "the upstream's address is refused by runtime_upstreams"
	case errors.As(err, &dnsErr):
		return "the upstream's host name does not resolve"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset by the upstream"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "the upstream's network is unreachable"
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		return "the upstream's TLS certificate is not trusted"
	case errors.As(err, &recordErr):
		return "the upstream does not speak TLS"
	case errors.As(err, &rpcErr):
		return fmt.Sprintf("the server answered with JSON-RPC error %d", rpcErr.Code)
	}
	for _, code := range httpStatusTexts {
		if strings.Contains(msg, http.StatusText(code)) {
			return fmt.Sprintf("the upstream answered HTTP %d %s", code, http.StatusText(code))
		}
	}
	switch {
	case strings.Contains(msg, "EOF"):
		return "the upstream closed the connection"
	case strings.Contains(msg, "tls:"):
		return "TLS handshake failed"
	case strings.Contains(msg, "unsupported protocol version"), strings.Contains(msg, "protocol version"):
		return "the server speaks no protocol version the checker knows"
	}
	return "the upstream's answer is not a valid MCP response"
}
