package verify

import (
	"fmt"
	"strings"
	"testing"
)

// TestParseCacheIsBoundedAndTrue: a flood of distinct numbers keeps the
// cache within two generations, a cached answer is the parser's own, and
// invalid input is not remembered.
func TestParseCacheIsBoundedAndTrue(t *testing.T) {
	p, err := NewPhoneParser("US")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * parseCacheSize {
		input := fmt.Sprintf("(415) 555-%04d", i%10000)
		if i >= 10000 {
			input = fmt.Sprintf("+44 7400 %06d", i)
		}
		if _, err := p.Parse(input); err != nil {
			t.Fatalf("Parse(%q) = %v", input, err)
		}
		if n := p.cache.len(); n > 2*parseCacheSize {
			t.Fatalf("after %d numbers the cache holds %d, more than %d", i+1, n, 2*parseCacheSize)
		}
	}
	for _, input := range []string{"(415) 555-2671", "+44 7400 123456", "+1 415 555 2671"} {
		first, err1 := p.Parse(input)
		again, err2 := p.Parse(input)
		fresh, err3 := PhoneParser{DefaultRegion: "US"}.Parse(input)
		if gb, err := p.ParseIn(input, "GB"); strings.HasPrefix(input, "(") && (err == nil && gb == first) {
			t.Errorf("ParseIn(%q, GB) answered the US number from the cache", input)
		}
		if err1 != nil || err2 != nil || err3 != nil || first != again || again != fresh {
			t.Errorf("Parse(%q): %v %v %v, %v %v %v; want the same number each time", input, first, again, fresh, err1, err2, err3)
		}
	}
	before := p.cache.len()
	for i := range 100 {
		p.Parse(fmt.Sprintf("+999 %d", i))
	}
	if p.cache.len() != before {
		t.Errorf("invalid input was cached: %d entries, was %d", p.cache.len(), before)
	}
}

func BenchmarkParsePhoneCached(b *testing.B) {
	p, _ := NewPhoneParser("")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse("+1 415 555 2671"); err != nil {
			b.Fatal(err)
		}
	}
}
