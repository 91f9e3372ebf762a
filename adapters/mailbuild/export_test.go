package mailbuild

// NewRendererWithLimit is NewRenderer keeping at most limit signers, so a
// test can reach the bound with a few keys.
func NewRendererWithLimit(limit int) *Renderer {
	r := NewRenderer()
	r.limit = limit
	return r
}

// CachedSigners reports how many parsed keys r holds.
func (r *Renderer) CachedSigners() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.signers)
}
