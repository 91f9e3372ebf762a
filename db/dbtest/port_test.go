package dbtest

import (
	"net"
	"strconv"
	"testing"
)

func TestFreeLoopbackPortBelowTheEphemeralRange(t *testing.T) {
	t.Parallel()
	low := ephemeralLow()
	for range 20 {
		port, err := FreeLoopbackPort()
		if err != nil {
			t.Fatal(err)
		}
		if low > 11000 && port >= low {
			t.Fatalf("port %d is in the ephemeral range (from %d), where an outgoing connection can take it", port, low)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", port, err)
		}
		_ = l.Close()
	}
}
