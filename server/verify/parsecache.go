package verify

import "sync"

// parseCacheSize bounds each generation of the parse cache: two
// generations of 4,096 numbers are a few hundred KiB at most.
const parseCacheSize = 4096

// parseCache remembers the numbers a parser found valid, by the input as
// typed. A verification parses the same input several times (the send,
// each check, the form's steps), and a parse is regular-expression work
// that costs more than the rest of a request. It holds two generations:
// when the young one is full the old one is dropped, so memory stays
// bounded whatever the inputs, and a number in use survives a turn.
// Invalid input is not remembered: it cannot push valid numbers out.
type parseCache struct {
	mu         sync.Mutex
	young, old map[string]Number
}

func newParseCache() *parseCache {
	return &parseCache{young: make(map[string]Number, parseCacheSize)}
}

func (c *parseCache) get(input string) (Number, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.young[input]; ok {
		return n, true
	}
	n, ok := c.old[input]
	if ok {
		c.putLocked(input, n)
	}
	return n, ok
}

func (c *parseCache) put(input string, n Number) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(input, n)
}

func (c *parseCache) putLocked(input string, n Number) {
	if len(c.young) >= parseCacheSize {
		c.old, c.young = c.young, make(map[string]Number, parseCacheSize)
	}
	c.young[input] = n
}

func (c *parseCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.young) + len(c.old)
}
