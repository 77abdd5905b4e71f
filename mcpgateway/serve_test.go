package mcpgateway

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadBounded(t *testing.T) {
	for _, size := range []int{0, 1, 4095, 4096, 4097, 10000} {
		body := strings.Repeat("x", size)
		got, err := readBounded(iotest.OneByteReader(strings.NewReader(body)), make([]byte, 0, 16), 10000)
		if err != nil || string(got) != body {
			t.Fatalf("size %d: err %v, got %d bytes", size, err, len(got))
		}
	}
	_, err := readBounded(strings.NewReader(strings.Repeat("x", 10001)), nil, 10000)
	if !errors.Is(err, errTooLarge) {
		t.Fatalf("10001 bytes over a 10000 limit: err = %v", err)
	}
	_, err = readBounded(iotest.ErrReader(errors.New("boom")), nil, 10)
	if err == nil || err.Error() != "boom" {
		t.Fatalf("read error not reported: %v", err)
	}
}
