package ca

import (
	"container/list"
	"crypto"
	"sync"
	"time"
)

// answerKey names a cached answer: the serial and the CertID hash of the
// request, which the answer's CertID repeats.
type answerKey struct {
	serial string
	hash   crypto.Hash
}

// certIDHashes are the CertID hashes a Responder answers.
var certIDHashes = []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512}

type answer struct {
	key     answerKey
	der     []byte
	staleAt time.Time
}

// answerCache is a bounded LRU of signed OCSP answers. Its generation
// counts invalidations: an answer signed from a store read made before an
// invalidation is not cached after it, so a revocation can never be
// overwritten by the "good" answer of a request that raced it.
type answerCache struct {
	mu    sync.Mutex
	max   int
	gen   uint64
	items map[answerKey]*list.Element // of *answer
	lru   list.List                   // front: most recently used
}

func newAnswerCache(max int) *answerCache {
	return &answerCache{max: max, items: map[answerKey]*list.Element{}}
}

func (c *answerCache) get(k answerKey, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	a := e.Value.(*answer)
	if !now.Before(a.staleAt) {
		c.remove(e)
		return nil, false
	}
	c.lru.MoveToFront(e)
	return a.der, true
}

// generation is read before the store is, and passed to put.
func (c *answerCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *answerCache) put(k answerKey, der []byte, staleAt time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if e, ok := c.items[k]; ok {
		c.remove(e)
	}
	c.items[k] = c.lru.PushFront(&answer{key: k, der: der, staleAt: staleAt})
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back())
	}
}

func (c *answerCache) remove(e *list.Element) {
	delete(c.items, e.Value.(*answer).key)
	c.lru.Remove(e)
}

func (c *answerCache) drop(serial string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, h := range certIDHashes {
		if e, ok := c.items[answerKey{serial, h}]; ok {
			c.remove(e)
		}
	}
}

func (c *answerCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.items = map[answerKey]*list.Element{}
	c.lru.Init()
}

func (c *answerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
