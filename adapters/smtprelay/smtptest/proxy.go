package smtptest

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// Fault is what a Proxy does once it has passed a client's final dot (the
// end of a message's data) on to the server.
type Fault int

// The faults a Proxy can inject after a message's final dot. In each the
// server has the whole message, so it may deliver it, while the client
// never learns whether it did.
const (
	// FaultNone passes the reply on as usual.
	FaultNone Fault = iota
	// FaultClose closes the client's connection at once, with a FIN.
	FaultClose
	// FaultReset aborts the client's connection with a TCP reset.
	FaultReset
	// FaultSwallowReply keeps the connection open but never passes on
	// another byte from the server.
	FaultSwallowReply
)

// ProxyOptions configure a Proxy. The zero value passes everything on at once.
type ProxyOptions struct {
	// Delay is added to every server-to-client write, so each reply costs
	// that much latency; writes are delayed in parallel, not queued one
	// after the other, as on a long link.
	Delay time.Duration
	// AfterDot, when set, picks the fault for each message whose final dot
	// the proxy passed on; message counts final dots over all
	// connections, from 1.
	AfterDot func(message int) Fault
}

// Proxy is a TCP proxy on 127.0.0.1 in front of an SMTP server that delays
// the server's replies and can cut connections after a message's data. It
// counts reply bursts: the turns in which the server answered something the
// client sent since its previous answer, which is how many round trips the
// client waited for. Its methods are safe for concurrent use.
type Proxy struct {
	opts   ProxyOptions
	target string
	ln     net.Listener

	mu     sync.Mutex
	closed bool
	dots   int
	bursts int
	conns  map[*proxyConn]struct{}
	wg     sync.WaitGroup
}

// StartProxy starts a proxy to target (host:port) and stops it, closing
// every connection, when the test ends.
func StartProxy(t testing.TB, target string, opts ProxyOptions) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: proxy listen: %v", err)
	}
	p := &Proxy{opts: opts, target: target, ln: ln, conns: make(map[*proxyConn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// Addr returns the host:port clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// ReplyBursts returns how many reply bursts the proxy has seen so far.
func (p *Proxy) ReplyBursts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bursts
}

// FinalDots returns how many final dots the proxy has passed on.
func (p *Proxy) FinalDots() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dots
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.closeBoth()
	}
	p.wg.Wait()
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		// clientSpoke starts true: connecting is what the greeting answers.
		c := &proxyConn{proxy: p, client: client, server: server, replies: make(chan delayed, 64), clientSpoke: true}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = client.Close()
			_ = server.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(c.clientToServer)
		p.wg.Go(c.serverToClient)
		p.wg.Go(c.deliverReplies)
	}
}

// proxyConn is one client connection and its connection to the server.
type proxyConn struct {
	proxy          *Proxy
	client, server net.Conn
	// replies carries server bytes to the client, each due at a time.
	replies chan delayed

	// The fields below are under proxy.mu.
	// clientSpoke says the client sent bytes since the server last wrote.
	clientSpoke bool
	// swallow drops every later server byte.
	swallow bool
}

// delayed is a chunk of the server's output and when it is due at the client.
type delayed struct {
	data []byte
	due  time.Time
}

// finalDot is how every message's data ends (RFC 5321 4.1.1.4); dot
// stuffing keeps it out of the data itself, and no command line has it.
var finalDot = []byte("\r\n.\r\n") //nolint:gochecknoglobals // read-only: a byte pattern

func (c *proxyConn) clientToServer() {
	defer c.closeBoth()
	buf := make([]byte, 32<<10)
	// tail keeps the last bytes seen, so a final dot split over two reads
	// is still found.
	var tail []byte
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			scan := append(tail, chunk...)
			dots := bytes.Count(scan, finalDot)
			tail = append(tail[:0], scan[max(0, len(scan)-len(finalDot)+1):]...)
			// The dots are counted before they are forwarded: once the server
			// has a message, FinalDots already includes it.
			c.proxy.mu.Lock()
			c.clientSpoke = true
			first := c.proxy.dots + 1
			c.proxy.dots += dots
			c.proxy.mu.Unlock()
			fault := FaultNone
			for i := range dots {
				if f := c.faultFor(first + i); f != FaultNone && fault == FaultNone {
					fault = f
				}
			}
			if fault != FaultNone {
				// Decided before the data goes on, so the server's reply to
				// it can never slip through to the client first.
				c.proxy.mu.Lock()
				c.swallow = true
				c.proxy.mu.Unlock()
			}
			if _, werr := c.server.Write(chunk); werr != nil {
				return
			}
			switch fault {
			case FaultClose:
				return
			case FaultReset:
				if tcp, ok := c.client.(*net.TCPConn); ok {
					_ = tcp.SetLinger(0) // Close then sends RST instead of FIN
				}
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// faultFor is the fault for the n-th final dot the proxy forwards.
func (c *proxyConn) faultFor(n int) Fault {
	if c.proxy.opts.AfterDot == nil {
		return FaultNone
	}
	return c.proxy.opts.AfterDot(n)
}

func (c *proxyConn) serverToClient() {
	defer close(c.replies)
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			c.proxy.mu.Lock()
			swallow := c.swallow
			if c.clientSpoke {
				c.proxy.bursts++
				c.clientSpoke = false
			}
			c.proxy.mu.Unlock()
			if !swallow {
				c.replies <- delayed{data: bytes.Clone(buf[:n]), due: time.Now().Add(c.proxy.opts.Delay)}
			}
		}
		if err != nil {
			return
		}
	}
}

// deliverReplies writes the server's output to the client as it falls due.
func (c *proxyConn) deliverReplies() {
	defer c.closeBoth()
	timer := time.NewTimer(0)
	defer timer.Stop()
	failed := false
	// Drain until serverToClient is done, so it never blocks on a client
	// that went away.
	for r := range c.replies {
		if failed {
			continue
		}
		if wait := time.Until(r.due); wait > 0 {
			// The delay being simulated, not a synchronisation.
			timer.Reset(wait)
			<-timer.C
		}
		if _, err := c.client.Write(r.data); err != nil {
			failed = true
			c.closeBoth()
		}
	}
}

// closeBoth closes both sides, which ends the connection's goroutines.
func (c *proxyConn) closeBoth() {
	_ = c.client.Close()
	_ = c.server.Close()
	c.proxy.mu.Lock()
	delete(c.proxy.conns, c)
	c.proxy.mu.Unlock()
}
