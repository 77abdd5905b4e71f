package mcpgateway

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// tlsCert is a self-signed certificate for 127.0.0.1 as PEM, and a pool trusting it.
func tlsCert(t *testing.T) (certPEM, keyPEM string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kd, _ := x509.MarshalECPrivateKey(key)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})), pool
}

// h2Caddy is streamCaddy on a TLS listener speaking HTTP/2, and a client for it.
func h2Caddy(t *testing.T, up [3]string) (base string, client *http.Client, c *testCaddy) {
	t.Helper()
	certPEM, keyPEM, pool := tlsCert(t)
	c = streamCaddy(up, t.TempDir()+"/access.log")
	c.Server["tls_connection_policies"] = []any{map[string]any{}}
	c.Server["protocols"] = []string{"h1", "h2"}
	c.TLS = map[string]any{"certificates": map[string]any{"load_pem": []any{
		map[string]any{"certificate": certPEM, "key": keyPEM},
	}}}
	base = "https://" + strings.TrimPrefix(c.start(t), "http://")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return base, &http.Client{Transport: tr}, c
}

// An HTTP/2 client's event stream takes the lean path (the gateway's own upstream
// connection, Connection: close, no ReverseProxy): events arrive one by one, the
// legacy endpoint is rewritten, other answers are relayed, and the client going away
// closes the upstream connection.
func TestStreamHTTP2(t *testing.T) {
	up, legacy := startSSEUpstream(t), startSSEUpstream(t)
	nope := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		http.Error(w, "GET not supported", http.StatusMethodNotAllowed)
	})
	base, client, c := h2Caddy(t, [3]string{up.URL, legacy.URL, nope})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/s/mcp", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET over %s: %d", resp.Proto, resp.StatusCode)
	}
	if !up.lastRequest(t).Close {
		t.Error("the upstream request did not come from the lean stream path (no Connection: close)")
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		ev := "id: " + string(rune('0'+i)) + "\ndata: h2\n\n"
		up.send(t, ev)
		if got := readEvent(t, br); got != ev {
			t.Fatalf("got %q, want %q", got, ev)
		}
	}
	cancel()
	select {
	case <-up.gone:
	case <-time.After(streamTestTimeout):
		t.Fatal("the upstream connection stayed open after the client went away")
	}

	lresp, err := client.Get(base + "/legacy/sse")
	if err != nil {
		t.Fatal(err)
	}
	lbr := bufio.NewReader(lresp.Body)
	legacy.send(t, "event: endpoint\ndata: /messages?sessionId=xyz\n\n")
	// The endpoint is rewritten to the gateway's path, its query sealed for this caller.
	if got := readEvent(t, lbr); !strings.HasPrefix(got, "event: endpoint\ndata: /legacy/message?sessionId=") || strings.Contains(got, "xyz") {
		t.Fatalf("endpoint event %q, want the gateway's /legacy/message with a sealed sessionId", got)
	}
	close(legacy.events)
	if rest, err := readEnd(t, lbr); err != nil || rest != "" {
		t.Fatalf("after a clean upstream end: %q, %v", rest, err)
	}
	lresp.Body.Close()

	// A config reload ends the streams of the unloaded gateway, as for hijacked ones.
	rresp, err := client.Get(base + "/s/mcp")
	if err != nil {
		t.Fatal(err)
	}
	rbr := bufio.NewReader(rresp.Body)
	up.send(t, "data: before reload\n\n")
	readEvent(t, rbr)
	c.reload(t)
	readEnd(t, rbr) // fails the test if the stream outlives the reload
	rresp.Body.Close()

	r405, err := client.Get(base + "/nope/mcp")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := readEnd(t, r405.Body)
	r405.Body.Close()
	if r405.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(b, "GET not supported") {
		t.Errorf("405 relayed as %d %q", r405.StatusCode, b)
	}
}
