//go:build reliability

package reliability

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// faults is what the proxy does to the traffic it carries; the zero value
// forwards everything untouched.
type faults struct {
	// Latency delays every chunk, in each direction.
	Latency time.Duration
	// ResetConn is the chance a new connection is reset (RST) once the
	// client has sent a random number of bytes below ResetWithin.
	ResetConn   float64
	ResetWithin int
	// CloseAfterDot is the chance, per message, that the connection is
	// closed right after the client's final "." reached the server, before
	// the server's reply.
	CloseAfterDot float64
	// SwallowReply is the chance, per message, that the server's reply to
	// the final "." is dropped and the connection held silent for
	// SwallowHold, then closed: a relay that takes the data and never answers.
	SwallowReply float64
	SwallowHold  time.Duration
}

// endOfData is how an SMTP client ends DATA; dot-stuffing guarantees it
// appears nowhere else in the client's stream.
var endOfData = []byte("\r\n.\r\n")

// faultProxy is a TCP proxy in front of the relay or the database that
// injects faults: latency, resets, closes after the final dot, swallowed
// replies (SMTP-aware when smtp is set) and partitions.
type faultProxy struct {
	listener net.Listener
	target   string
	smtp     bool
	faults   atomic.Pointer[faults]

	mu    sync.Mutex
	conns map[*proxyConn]struct{}
	// healed is non-nil while partitioned and closed on heal.
	healed chan struct{}
	closed bool

	resets, closesAfterDot, swallowed, dropped atomic.Int64
}

func startProxy(target string, smtp bool) (*faultProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	p := &faultProxy{listener: l, target: target, smtp: smtp, conns: map[*proxyConn]struct{}{}}
	p.faults.Store(&faults{})
	go p.accept()
	return p, nil
}

func (p *faultProxy) addr() string { return p.listener.Addr().String() }

func (p *faultProxy) port() int { return p.listener.Addr().(*net.TCPAddr).Port }

// set replaces the faults for new chunks, messages and connections.
func (p *faultProxy) set(f faults) { p.faults.Store(&f) }

// partition freezes every connection, old and new, until heal.
func (p *faultProxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.healed == nil {
		p.healed = make(chan struct{})
		for c := range p.conns {
			c.frozen.Store(true)
		}
	}
}

// heal ends a partition: connections that lived through it are dropped, as
// a NAT or load balancer would have forgotten them, and new ones flow.
func (p *faultProxy) heal() {
	p.mu.Lock()
	var frozen []*proxyConn
	for c := range p.conns {
		if c.frozen.Load() {
			frozen = append(frozen, c)
		}
	}
	if p.healed != nil {
		close(p.healed)
		p.healed = nil
	}
	p.mu.Unlock()
	for _, c := range frozen {
		p.dropped.Add(1)
		c.reset()
	}
}

// gate returns the channel to wait on while partitioned, or nil.
func (p *faultProxy) gate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.healed
}

// dropAll resets every connection, as a crashed peer would.
func (p *faultProxy) dropAll() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.reset()
	}
}

func (p *faultProxy) close() {
	p.mu.Lock()
	p.closed = true
	if p.healed != nil {
		close(p.healed)
		p.healed = nil
	}
	p.mu.Unlock()
	_ = p.listener.Close()
	p.dropAll()
}

func (p *faultProxy) accept() {
	for {
		client, err := p.listener.Accept()
		if err != nil {
			return
		}
		go p.handle(client)
	}
}

type proxyConn struct {
	client, server net.Conn
	frozen         atomic.Bool
	swallowing     atomic.Bool
	once           sync.Once
}

// reset ends both sides abruptly (RST to the client).
func (c *proxyConn) reset() {
	c.once.Do(func() {
		if tcp, ok := c.client.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
		_ = c.client.Close()
		if c.server != nil {
			_ = c.server.Close()
		}
	})
}

func (p *faultProxy) handle(client net.Conn) {
	c := &proxyConn{client: client}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = client.Close()
		return
	}
	p.conns[c] = struct{}{}
	if p.healed != nil {
		c.frozen.Store(true)
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.reset()
	}()
	// A connection made during a partition waits for the heal, then is
	// dropped with the others: the client sees a connect that hangs.
	if g := p.gate(); g != nil {
		<-g
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	c.server = server
	f := p.faults.Load()
	resetAt := -1
	if f.ResetConn > 0 && rand.Float64() < f.ResetConn {
		resetAt = rand.IntN(max(f.ResetWithin, 1))
	}
	done := make(chan struct{}, 2)
	go func() { p.clientToServer(c, resetAt); done <- struct{}{} }()
	go func() { p.serverToClient(c); done <- struct{}{} }()
	<-done
}

// hold waits out a partition; false means the connection must be dropped.
func (p *faultProxy) hold(c *proxyConn) bool {
	if g := p.gate(); g != nil {
		<-g
		return false
	}
	return !c.frozen.Load()
}

func (p *faultProxy) clientToServer(c *proxyConn, resetAt int) {
	buf := make([]byte, 32<<10)
	var tail []byte
	sent := 0
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if !p.hold(c) {
				return
			}
			f := p.faults.Load()
			if f.Latency > 0 {
				// Fault injection: the network is slow on purpose.
				time.Sleep(f.Latency)
			}
			if resetAt >= 0 && sent+len(chunk) > resetAt {
				_, _ = c.server.Write(chunk[:resetAt-sent])
				p.resets.Add(1)
				c.reset()
				return
			}
			if p.smtp {
				var stop bool
				chunk, tail, stop = p.inspectData(c, f, chunk, tail)
				if stop {
					return
				}
			}
			if _, werr := c.server.Write(chunk); werr != nil {
				return
			}
			sent += len(chunk)
		}
		if err != nil {
			return
		}
	}
}

// inspectData finds the end of each message in chunk and applies the
// per-message faults; stop means the connection is finished.
func (p *faultProxy) inspectData(c *proxyConn, f *faults, chunk, tail []byte) ([]byte, []byte, bool) {
	joined := append(append([]byte{}, tail...), chunk...)
	offset := 0
	for {
		i := bytes.Index(joined[offset:], endOfData)
		if i < 0 {
			break
		}
		end := offset + i + len(endOfData) - len(tail) // in chunk
		offset += i + len(endOfData)
		switch r := rand.Float64(); {
		case r < f.CloseAfterDot:
			_, _ = c.server.Write(chunk[:end])
			p.closesAfterDot.Add(1)
			_ = c.client.Close()
			_ = c.server.Close()
			return nil, nil, true
		case r < f.CloseAfterDot+f.SwallowReply:
			_, _ = c.server.Write(chunk[:end])
			p.swallowed.Add(1)
			c.swallowing.Store(true)
			// Fault injection: the silence lasts SwallowHold, then the
			// connection dies without a reply.
			time.Sleep(f.SwallowHold)
			c.reset()
			return nil, nil, true
		}
	}
	if len(joined) > len(endOfData)-1 {
		tail = append(tail[:0], joined[len(joined)-(len(endOfData)-1):]...)
	} else {
		tail = append(tail[:0], joined...)
	}
	return chunk, tail, false
}

func (p *faultProxy) serverToClient(c *proxyConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			if !p.hold(c) {
				return
			}
			if f := p.faults.Load(); f.Latency > 0 {
				time.Sleep(f.Latency)
			}
			if !c.swallowing.Load() {
				if _, werr := c.client.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			// Either side ending ends the connection; handle closes both.
			return
		}
	}
}
