package gateway

import (
	"encoding/binary"
	"testing"
)

// TestPlain8 checks the test of 8 bytes at once against the table of
// plain bytes, for every byte at every place among plain ones.
func TestPlain8(t *testing.T) {
	for _, around := range []byte{' ', '!', '#', '[', ']', 'a', '~', 0x7f} {
		for c := range 256 {
			for i := range 8 {
				var b [8]byte
				for j := range b {
					b[j] = around
				}
				b[i] = byte(c)
				if got, want := plain8(binary.LittleEndian.Uint64(b[:])), plain[c]; got != want {
					t.Errorf("plain8(%q) = %t, want %t", b, got, want)
				}
			}
		}
	}
}
