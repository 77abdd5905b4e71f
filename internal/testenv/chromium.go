package testenv

import (
	"os"
	"testing"
)

// ChromiumBin is Debian's Chromium, which the browser tests drive through
// playwright-core (testdata/node). .ci/run installs it (apt-get install chromium); a
// test that needs it fails, naming the package, when it is missing.
func ChromiumBin(t testing.TB) string {
	t.Helper()
	SkipIfShort(t)
	const bin = "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("missing test dependency %s (%v): apt-get install chromium", bin, err)
	}
	return bin
}
