package gateway

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/contract"
)

// The contract's field names are exact. encoding/json matches them without
// regard to case, merges a repeated object and keeps the last of a repeated
// value, so that a proxy that parses JSON otherwise could be shown one
// request and tally act on another. checkMembers refuses what it would
// have read differently: a member named like a field in another case, a
// member given twice, and a key given twice in the counters object. It
// also refuses a null counter, which encoding/json reads as 0.

// fieldNames returns the JSON names of a request struct's fields.
func fieldNames(t reflect.Type) []string {
	if names, ok := fieldCache.Load(t); ok {
		return names.([]string)
	}
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	fieldCache.Store(t, names)
	return names
}

var fieldCache sync.Map // reflect.Type -> []string

// countersField is the one object member whose own members are checked,
// in the requests that have it: two values of one counter would be
// ambiguous, and a null is no value.
const countersField = "counters"

// checkMembers checks the members of the JSON object data, which
// encoding/json has already parsed without error, against the struct's
// field names.
func checkMembers(data []byte, names []string) error {
	s := scanner{data: data}
	return s.object("field", func(name string) error {
		for _, n := range names {
			if name != n && strings.EqualFold(name, n) {
				return fmt.Errorf("%w: unknown field %s: field names are case-sensitive, want %q", actors.ErrInvalidParameter, contract.Quote(name), n)
			}
		}
		if name == countersField && s.peek() == '{' && slices.Contains(names, countersField) {
			return s.object("counter", func(key string) error {
				if s.peek() == 'n' {
					return fmt.Errorf("%w: counter %s is null, want an integer", actors.ErrInvalidParameter, contract.Quote(key))
				}
				s.skip()
				return nil
			})
		}
		s.skip()
		return nil
	})
}

// scanner walks a JSON text that is known to be valid.
type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// object reads an object, calling member with each member's name with the
// scanner at the member's value, which member must consume. Unless what
// is empty, a name given twice is refused as a repeated what.
func (s *scanner) object(what string, member func(name string) error) error {
	s.ws()
	s.pos++ // {
	var seen []string
	for s.peek() != '}' {
		if s.data[s.pos] == ',' {
			s.pos++
			s.ws()
		}
		name := s.str()
		if what != "" {
			for _, n := range seen {
				if n == name {
					return fmt.Errorf("%w: %s %s given twice", actors.ErrInvalidParameter, what, contract.Quote(name))
				}
			}
			seen = append(seen, name)
		}
		s.ws()
		s.pos++ // :
		if err := member(name); err != nil {
			return err
		}
	}
	s.pos++ // }
	return nil
}

// str reads a string, decoding its escapes.
func (s *scanner) str() string {
	s.pos++ // opening quote
	start := s.pos
	for s.data[s.pos] != '"' && s.data[s.pos] != '\\' {
		s.pos++
	}
	if s.data[s.pos] == '"' {
		s.pos++
		return string(s.data[start : s.pos-1])
	}
	b := append([]byte(nil), s.data[start:s.pos]...)
	for {
		switch c := s.data[s.pos]; c {
		case '"':
			s.pos++
			return string(b)
		case '\\':
			s.pos++
			e := s.data[s.pos]
			s.pos++
			switch e {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, _ := hex4(s.data[s.pos:])
				s.pos += 4
				if utf16.IsSurrogate(r) {
					if low, ok := hex4(s.data[min(s.pos+2, len(s.data)):]); ok && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
						if d := utf16.DecodeRune(r, low); d != utf8.RuneError {
							r = d
							s.pos += 6
						}
					}
				}
				b = utf8.AppendRune(b, r)
			default: // " \ /
				b = append(b, e)
			}
		default:
			b = append(b, c)
			s.pos++
		}
	}
}

// skip consumes one value.
func (s *scanner) skip() {
	switch s.peek() {
	case '"':
		s.str()
	case '{':
		s.object("", func(string) error { s.skip(); return nil })
	case '[':
		s.pos++
		for s.peek() != ']' {
			if s.data[s.pos] == ',' {
				s.pos++
			}
			s.skip()
		}
		s.pos++
	default: // a number, true, false or null
		for s.pos < len(s.data) && !strings.ContainsRune(",]} \t\r\n", rune(s.data[s.pos])) {
			s.pos++
		}
	}
}
