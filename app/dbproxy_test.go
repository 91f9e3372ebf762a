package app

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// dbProxy stands between the gateway and PostgreSQL so a test can take the
// database away without touching the shared server: frozen (a partition:
// connections stay open and nothing passes) or down (every connection cut
// and new ones closed at once, as after a crash).
type dbProxy struct {
	listener net.Listener
	target   string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	frozen chan struct{} // non-nil while frozen; closed on heal
	down   bool
}

func startDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{listener: l, target: target, conns: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(func() {
		l.Close()
		p.heal()
		p.cutAll()
	})
	return p
}

// proxiedDatabaseURL points rawURL's host at the proxy.
func (p *dbProxy) proxiedDatabaseURL(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.listener.Addr().String()
	return u.String()
}

func (p *dbProxy) accept() {
	for {
		client, err := p.listener.Accept()
		if err != nil {
			return
		}
		go p.serve(client)
	}
}

func (p *dbProxy) serve(client net.Conn) {
	p.mu.Lock()
	down, frozen := p.down, p.frozen
	p.mu.Unlock()
	if down {
		client.Close()
		return
	}
	if frozen != nil {
		<-frozen
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go p.pipe(server, client)
	p.pipe(client, server)
}

// pipe copies src to dst, holding each chunk while the proxy is frozen.
func (p *dbProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			if frozen != nil {
				<-frozen
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze holds every byte, old connections and new, until heal.
func (p *dbProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
}

// heal lets traffic through again (and ends a down spell).
func (p *dbProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
	p.down = false
}

// crash cuts every connection and closes new ones until heal.
func (p *dbProxy) crash() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.cutAll()
}

func (p *dbProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}
