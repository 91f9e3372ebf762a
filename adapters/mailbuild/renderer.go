package mailbuild

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/mailgate/mailgate/domain"
)

// maxCachedSigners bounds how many parsed keys a Renderer keeps. Tenants
// have a key or two each, so this holds every active key of a large
// gateway; past it one entry makes room for the next.
const maxCachedSigners = 1000

// Renderer builds outgoing messages and signs those whose tenant has a DKIM
// key. Each key is parsed once and its signer reused, since parsing a PEM key
// (RSA above all) costs more than building a message. It is safe for
// concurrent use.
type Renderer struct {
	mu      sync.RWMutex
	signers map[signerID]*DKIMSigner
	// limit is maxCachedSigners; tests lower it.
	limit int
}

// signerID names a key by everything that goes into its signer, so a key
// rotated under the same selector gets a new signer.
type signerID struct {
	domain, selector string
	keySum           [sha256.Size]byte
}

// NewRenderer returns a Renderer with an empty key cache.
func NewRenderer() *Renderer {
	return &Renderer{signers: make(map[signerID]*DKIMSigner), limit: maxCachedSigners}
}

// Render returns msg built with Build (date, attachments and downgrade as
// in Options) and, when key is not nil, signed with it.
func (r *Renderer) Render(msg *domain.Message, date time.Time, attachments []domain.AttachmentContent, key *domain.DKIMKey, downgrade bool) ([]byte, error) {
	data, err := Build(msg, Options{Date: date, Attachments: attachments, Downgrade: downgrade})
	if err != nil || key == nil {
		return data, err
	}
	signer, err := r.signer(key)
	if err != nil {
		return nil, fmt.Errorf("DKIM key of %s: %w", key.Domain, err)
	}
	return signer.Sign(data)
}

// signer returns the cached signer for key, parsing the key on first use.
// The parse runs outside the lock so one slow key doesn't hold up messages
// signed with others; two messages racing on a new key both parse it and
// one signer wins, which is harmless as signers are immutable.
func (r *Renderer) signer(key *domain.DKIMKey) (*DKIMSigner, error) {
	id := signerID{domain: key.Domain, selector: key.Selector, keySum: sha256.Sum256(key.PrivateKey)}
	r.mu.RLock()
	s, ok := r.signers[id]
	r.mu.RUnlock()
	if ok {
		return s, nil
	}
	s, err := NewDKIMSigner(key.Domain, key.Selector, key.PrivateKey)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cached, ok := r.signers[id]; ok {
		return cached, nil
	}
	if len(r.signers) >= r.limit {
		for evict := range r.signers {
			delete(r.signers, evict)
			break
		}
	}
	r.signers[id] = s
	return s, nil
}
