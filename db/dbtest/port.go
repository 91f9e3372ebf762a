package dbtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago, for a server a test starts as another process (a PostgreSQL cluster,
// the mailgate binary). It is chosen below the kernel's ephemeral range:
// a port the kernel hands out (listening on :0) can be handed out again,
// between the check and the server's listen, as the local port of any
// outgoing connection, and the server then fails with "address already in
// use" (seen in the fault suite while benchmarks ran beside it).
func FreeLoopbackPort() (int, error) {
	low := ephemeralLow()
	const floor = 10000
	if low <= floor+1000 {
		return kernelPort()
	}
	for range 100 {
		port := floor + rand.IntN(low-floor)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port between %d and %d", floor, low)
}

// LoopbackPort is FreeLoopbackPort for a test, which fails when no port is free.
func LoopbackPort(tb testing.TB) int {
	tb.Helper()
	port, err := FreeLoopbackPort()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it can't be read).
func ephemeralLow() int {
	const linuxDefault = 32768
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return linuxDefault
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return linuxDefault
	}
	return low
}

// kernelPort lets the kernel choose, where the ephemeral range leaves no
// room below it.
func kernelPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
