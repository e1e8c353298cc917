package gateway

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/contract"
)

// A JSON request is decoded in one walk over its bytes, straight into the
// fields of the command. The walk checks the whole text as JSON (RFC 8259,
// nesting at most 10,000 deep, as encoding/json), refuses invalid UTF-8 and
// a \u escape of half a surrogate pair anywhere in it, and holds the
// request to the contract's exact field names: a proxy that parses JSON
// otherwise must not be shown one request while tally acts on another. So
// it refuses a member named like one of the request's fields in another
// case (Unicode simple folding, as encoding/json matches names), a member
// given twice, and a counter given twice or as null. Members the request
// does not know are checked as JSON and skipped. A null leaves a field as
// if absent, but a null element of a list is an empty string.

// A jsonField is a member of a request's JSON object and where it goes.
type jsonField struct {
	name string
	slot slot
}

// The JSON shapes of the requests. A get has a delete's: its requestID
// must be a string, or null, and is dropped.
var (
	setJSON     = []jsonField{{"groupID", slotGroup}, {"counters", slotCounters}, {"requestID", slotRequestID}}
	changeJSON  = []jsonField{{"groupID", slotGroup}, {"key", slotKey}, {"value", slotValue}, {"requestID", slotRequestID}}
	keysJSON    = []jsonField{{"groupID", slotGroup}, {"keyList", slotList}, {"requestID", slotRequestID}}
	membersJSON = []jsonField{{"groupID", slotGroup}, {"userIDs", slotList}, {"requestID", slotRequestID}}
	listJSON    = []jsonField{{"groupID", slotGroup}, {"after", slotAfter}, {"limit", slotListLimit}}
	historyJSON = []jsonField{{"groupID", slotGroup}, {"fromSeq", slotFromSeq}, {"limit", slotLimit32}}
)

// jsonShapeOf returns the JSON shape of operation o's request.
func jsonShapeOf(o op) []jsonField {
	switch o {
	case opSet:
		return setJSON
	case opIncrease, opDecrease:
		return changeJSON
	case opMembersAdd, opMembersRemove:
		return membersJSON
	case opMembersList:
		return listJSON
	case opHistory:
		return historyJSON
	default: // get, delete
		return keysJSON
	}
}

// maxJSONDepth is how deeply encoding/json lets arrays and objects nest.
const maxJSONDepth = 10000

// decodeJSON decodes the JSON request data of the given shape into r.
func (r *requestFields) decodeJSON(data []byte, shape []jsonField) error {
	d := jsonDecoder{data: data}
	d.ws()
	if d.pos == len(data) || data[d.pos] != '{' {
		return fmt.Errorf("%w: payload is not a JSON object", actors.ErrInvalidParameter)
	}
	d.pos++
	d.depth = 1
	var given uint8   // the shape's fields given, by index
	var others others // the names of the other members
	d.ws()
	done := d.pos < len(data) && data[d.pos] == '}'
	if done {
		d.pos++
	}
	for !done {
		name, err := d.name()
		if err != nil {
			return err
		}
		switch i := fieldIndex(shape, name); {
		case i < 0:
			if err = others.add(shape, name); err == nil {
				err = d.skip()
			}
		case given&(1<<i) != 0:
			err = fmt.Errorf("%w: field %q given twice", actors.ErrInvalidParameter, shape[i].name)
		default:
			given |= 1 << i
			err = r.member(&d, shape[i])
		}
		if err == nil {
			done, err = d.next('}')
		}
		if err != nil {
			return err
		}
	}
	d.ws()
	if d.pos < len(data) {
		return d.syntax("after the object")
	}
	for _, f := range shape {
		if f.slot == slotValue && !r.hasValue {
			return fmt.Errorf("%w: value is required", actors.ErrInvalidParameter)
		}
	}
	return nil
}

// fieldIndex returns the index in shape of the field named name, or -1.
func fieldIndex(shape []jsonField, name []byte) int {
	for i, f := range shape {
		if string(name) == f.name {
			return i
		}
	}
	return -1
}

// others are the names of a request's members that are none of its
// fields, to refuse one given twice: a list while it is short, then a set.
type others struct {
	list []string
	set  map[string]struct{}
}

const othersListed = 16

// add checks the name of a member that is none of shape's fields: it must
// not be one of them in another case, nor given before.
func (o *others) add(shape []jsonField, b []byte) error {
	name := string(b)
	for _, f := range shape {
		if strings.EqualFold(name, f.name) {
			return fmt.Errorf("%w: unknown field %s: field names are case-sensitive, want %q", actors.ErrInvalidParameter, contract.Quote(name), f.name)
		}
	}
	given := false
	if o.set != nil {
		_, given = o.set[name]
		o.set[name] = struct{}{}
	} else {
		for _, n := range o.list {
			given = given || n == name
		}
		o.list = append(o.list, name)
		if len(o.list) > othersListed {
			o.set = make(map[string]struct{}, 2*othersListed)
			for _, n := range o.list {
				o.set[n] = struct{}{}
			}
		}
	}
	if given {
		return fmt.Errorf("%w: field %s given twice", actors.ErrInvalidParameter, contract.Quote(name))
	}
	return nil
}

// member reads the value of field f into r.
func (r *requestFields) member(d *jsonDecoder, f jsonField) error {
	if d.pos < len(d.data) && d.data[d.pos] == 'n' {
		return d.null() // the field stays as if absent: a list or counters nil
	}
	var err error
	switch f.slot {
	case slotGroup:
		r.group, err = d.stringValue(f.name)
	case slotKey:
		r.key, err = d.stringValue(f.name)
	case slotRequestID:
		r.requestID, err = d.stringValue(f.name)
	case slotAfter:
		r.after, err = d.stringValue(f.name)
	case slotValue:
		r.value, err = d.int64Value(f.name)
		r.hasValue = err == nil
	case slotListLimit:
		var n int64
		if n, err = d.int64Value(f.name); err == nil && (n < 1 || n > actors.MaxListMembers) {
			err = fmt.Errorf("%w: limit %d, want 1..%d", actors.ErrInvalidParameter, n, actors.MaxListMembers)
		}
		r.limit32 = uint32(n)
	case slotFromSeq:
		r.fromSeq, err = d.uint64Value(f.name)
	case slotLimit32:
		r.limit32, err = d.uint32Value(f.name)
	case slotCounters:
		r.counters, err = d.counters()
	case slotList:
		r.list, err = d.strings(f.name)
	}
	return err
}

// jsonDecoder walks a JSON text.
type jsonDecoder struct {
	data  []byte
	pos   int
	depth int    // of the array or object being read, 1 for the request
	buf   []byte // a string with escapes, decoded
}

func (d *jsonDecoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\r', '\n':
			d.pos++
		default:
			return
		}
	}
}

// next reads what follows a member or element: a comma, then white space,
// or the closing end, which it reports.
func (d *jsonDecoder) next(end byte) (bool, error) {
	d.ws()
	if d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ',':
			d.pos++
			d.ws()
			return false, nil
		case end:
			d.pos++
			d.depth--
			return true, nil
		}
	}
	return false, d.syntax("after a value, want ',' or '" + string(end) + "'")
}

// name reads a member's name, the colon and white space after it.
func (d *jsonDecoder) name() ([]byte, error) {
	if d.pos == len(d.data) || d.data[d.pos] != '"' {
		return nil, d.syntax("where a member's name should be")
	}
	s, err := d.str()
	if err != nil {
		return nil, err
	}
	d.ws()
	if d.pos == len(d.data) || d.data[d.pos] != ':' {
		return nil, d.syntax("after a member's name, want ':'")
	}
	d.pos++
	d.ws()
	if d.pos == len(d.data) {
		return nil, d.syntax("where a value should be")
	}
	return s, nil
}

// syntax reports malformed JSON at the current position.
func (d *jsonDecoder) syntax(where string) error {
	if d.pos >= len(d.data) {
		return fmt.Errorf("%w: malformed JSON: unexpected end %s", actors.ErrInvalidParameter, where)
	}
	c := d.data[d.pos]
	what := strconv.QuoteRune(rune(c))
	if c >= utf8.RuneSelf {
		what = fmt.Sprintf("byte %#x", c)
	}
	return fmt.Errorf("%w: malformed JSON at byte %d: %s %s", actors.ErrInvalidParameter, d.pos, what, where)
}

// plain marks the bytes a string holds as they are: printable ASCII but
// the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string, its opening quote at d.pos, and returns its text:
// a part of data when it has no escapes, else decoded into d.buf, valid
// until the next call.
func (d *jsonDecoder) str() ([]byte, error) {
	d.pos++
	start := d.pos
	for {
		for d.pos+8 <= len(d.data) && plain8(binary.LittleEndian.Uint64(d.data[d.pos:])) {
			d.pos += 8
		}
		if d.pos == len(d.data) {
			return nil, d.syntax("in a string")
		}
		switch c := d.data[d.pos]; {
		case plain[c]:
			d.pos++
		case c == '"':
			d.pos++
			return d.data[start : d.pos-1], nil
		case c == '\\':
			d.buf = append(d.buf[:0], d.data[start:d.pos]...)
			return d.escaped()
		default:
			if err := d.char(); err != nil {
				return nil, err
			}
		}
	}
}

// plain8 reports whether the 8 bytes of x are all plain, testing them at
// once: none below 0x20, none above ASCII, no quote and no backslash.
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, b := x^(ones*'"'), x^(ones*'\\')
	special := (x-ones*0x20)&^x | (q-ones)&^q | (b-ones)&^b | x
	return special&highs == 0
}

// char reads a character of a string that is neither plain nor an escape:
// valid UTF-8 above ASCII.
func (d *jsonDecoder) char() error {
	if d.data[d.pos] < utf8.RuneSelf {
		return d.syntax("in a string: a control character must be escaped")
	}
	r, size := utf8.DecodeRune(d.data[d.pos:])
	if r == utf8.RuneError && size == 1 {
		return fmt.Errorf("%w: payload is not valid UTF-8 (byte %d)", actors.ErrInvalidParameter, d.pos)
	}
	d.pos += size
	return nil
}

// escaped reads the rest of a string from its first escape on, into d.buf.
func (d *jsonDecoder) escaped() ([]byte, error) {
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case plain[c]:
			d.buf = append(d.buf, c)
			d.pos++
		case c == '"':
			d.pos++
			return d.buf, nil
		case c == '\\':
			if err := d.escape(); err != nil {
				return nil, err
			}
		default:
			start := d.pos
			if err := d.char(); err != nil {
				return nil, err
			}
			d.buf = append(d.buf, d.data[start:d.pos]...)
		}
	}
	return nil, d.syntax("in a string")
}

// escape decodes the escape at d.pos into d.buf.
func (d *jsonDecoder) escape() error {
	start := d.pos
	d.pos++
	if d.pos == len(d.data) {
		return d.syntax("in a string's escape")
	}
	e := d.data[d.pos]
	d.pos++
	switch e {
	case '"', '\\', '/':
		d.buf = append(d.buf, e)
	case 'b':
		d.buf = append(d.buf, '\b')
	case 'f':
		d.buf = append(d.buf, '\f')
	case 'n':
		d.buf = append(d.buf, '\n')
	case 'r':
		d.buf = append(d.buf, '\r')
	case 't':
		d.buf = append(d.buf, '\t')
	case 'u':
		r, ok := hex4(d.data[d.pos:])
		if !ok {
			return d.syntax("in a \\u escape, want four hex digits")
		}
		d.pos += 4
		if utf16.IsSurrogate(r) {
			// A high half must be followed by an escaped low half.
			low, ok := rune(0), false
			if r < 0xdc00 && d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
				low, ok = hex4(d.data[d.pos+2:])
			}
			if !ok || low < 0xdc00 || low > 0xdfff {
				return fmt.Errorf("%w: payload escapes half of a UTF-16 surrogate pair at byte %d", actors.ErrInvalidParameter, start)
			}
			d.pos += 6
			r = utf16.DecodeRune(r, low)
		}
		d.buf = utf8.AppendRune(d.buf, r)
	default:
		d.pos--
		return d.syntax("in a string's escape")
	}
	return nil
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// null reads the literal null.
func (d *jsonDecoder) null() error { return d.literal("null") }

func (d *jsonDecoder) literal(lit string) error {
	for i := range len(lit) {
		if d.pos == len(d.data) || d.data[d.pos] != lit[i] {
			return d.syntax("in literal " + lit)
		}
		d.pos++
	}
	return nil
}

// number reads a number and reports whether it is an integer: one
// without a fraction or an exponent. The sign and digits of an integer
// are data[start:d.pos].
func (d *jsonDecoder) number() (integer bool, err error) {
	if d.pos < len(d.data) && d.data[d.pos] == '-' {
		d.pos++
	}
	switch {
	case d.pos == len(d.data):
		return false, d.syntax("in a number")
	case d.data[d.pos] == '0':
		d.pos++
	case d.data[d.pos] >= '1' && d.data[d.pos] <= '9':
		d.digits()
	default:
		return false, d.syntax("in a number")
	}
	integer = true
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		integer = false
		d.pos++
		if !d.digits() {
			return false, d.syntax("in a number's fraction")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		integer = false
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if !d.digits() {
			return false, d.syntax("in a number's exponent")
		}
	}
	return integer, nil
}

// digits reads digits, reporting whether there was one.
func (d *jsonDecoder) digits() bool {
	start := d.pos
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		d.pos++
	}
	return d.pos > start
}

// integer reads a number that must be an integer whose magnitude is at
// most most (on the negative side, mostNeg; a negative number is refused
// when that is 0, as strconv.ParseUint refuses -0).
func (d *jsonDecoder) integer(field string, most, mostNeg uint64, want string) (neg bool, n uint64, err error) {
	start := d.pos
	if c := d.data[d.pos]; c != '-' && (c < '0' || c > '9') {
		return false, 0, d.mistyped(field, want)
	}
	integer, err := d.number()
	if err != nil {
		return false, 0, err
	}
	lit := d.data[start:d.pos]
	neg = lit[0] == '-'
	ok := integer && !(neg && mostNeg == 0)
	if neg {
		lit, most = lit[1:], mostNeg
	}
	for _, c := range lit {
		if !ok {
			break
		}
		digit := uint64(c - '0')
		ok = n <= (most-digit)/10
		n = n*10 + digit
	}
	if !ok {
		return false, 0, fmt.Errorf("%w: %s must be %s, not the JSON number %s", actors.ErrInvalidParameter, field, want, shorten(d.data[start:d.pos]))
	}
	return neg, n, nil
}

// shorten returns a literal for an error message, shortened when long: a
// refusal goes out in a reply's header and body, and must fit whatever
// the payload's size.
func shorten(lit []byte) string {
	const most = 32 // any int64 or uint64
	if len(lit) <= most {
		return string(lit)
	}
	return string(lit[:most]) + "... (" + strconv.Itoa(len(lit)) + " bytes)"
}

const int64Range = "an integer from -9223372036854775808 to 9223372036854775807"

// int64Value reads an integer of int64's range.
func (d *jsonDecoder) int64Value(field string) (int64, error) {
	neg, n, err := d.integer(field, 1<<63-1, 1<<63, int64Range)
	if neg {
		return int64(-n), err // -(1<<63) wraps to itself
	}
	return int64(n), err
}

const (
	uint32Range = "an integer from 0 to 4294967295"
	uint64Range = "an integer from 0 to 18446744073709551615"
)

// uint32Value reads an integer of uint32's range.
func (d *jsonDecoder) uint32Value(field string) (uint32, error) {
	_, n, err := d.integer(field, 1<<32-1, 0, uint32Range)
	return uint32(n), err
}

// uint64Value reads an integer of uint64's range.
func (d *jsonDecoder) uint64Value(field string) (uint64, error) {
	_, n, err := d.integer(field, 1<<64-1, 0, uint64Range)
	return n, err
}

// stringValue reads a string.
func (d *jsonDecoder) stringValue(field string) (string, error) {
	if d.data[d.pos] != '"' {
		return "", d.mistyped(field, "a string")
	}
	s, err := d.str()
	return string(s), err
}

// counters reads a set's counters: an object of integers, each counter
// given once.
func (d *jsonDecoder) counters() (map[string]int64, error) {
	if d.data[d.pos] != '{' {
		return nil, d.mistyped("counters", "an object")
	}
	d.pos++
	d.depth++
	counters := make(map[string]int64)
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return counters, nil
	}
	for {
		name, err := d.name()
		if err != nil {
			return nil, err
		}
		key := string(name)
		if _, ok := counters[key]; ok {
			return nil, fmt.Errorf("%w: counter %s given twice", actors.ErrInvalidParameter, contract.Quote(key))
		}
		if d.pos < len(d.data) && d.data[d.pos] == 'n' {
			if err := d.null(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: counter %s is null, want an integer", actors.ErrInvalidParameter, contract.Quote(key))
		}
		v, err := d.int64Value("every counter")
		if err != nil {
			return nil, err
		}
		counters[key] = v
		if done, err := d.next('}'); err != nil || done {
			return counters, err
		}
	}
}

// strings reads a list of strings, a null in it read as "".
func (d *jsonDecoder) strings(field string) ([]string, error) {
	if d.data[d.pos] != '[' {
		return nil, d.mistyped(field, "an array of strings")
	}
	d.pos++
	d.depth++
	var first [8]string
	list := first[:0]
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return []string{}, nil
	}
	for {
		s := ""
		switch {
		case d.pos == len(d.data):
			return nil, d.syntax("in an array")
		case d.data[d.pos] == 'n':
			if err := d.null(); err != nil {
				return nil, err
			}
		default:
			var err error
			if s, err = d.stringValue(field); err != nil {
				return nil, err
			}
		}
		list = append(list, s)
		if done, err := d.next(']'); err != nil || done {
			if err != nil {
				return nil, err
			}
			return append([]string(nil), list...), nil
		}
	}
}

// mistyped refuses a field's value of another JSON type than want, once
// the value is known to be valid JSON.
func (d *jsonDecoder) mistyped(field, want string) error {
	kind := "number"
	switch d.data[d.pos] {
	case '"':
		kind = "string"
	case '{':
		kind = "object"
	case '[':
		kind = "array"
	case 't', 'f':
		kind = "bool"
	case 'n':
		kind = "null"
	}
	if err := d.skip(); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s must be %s, not a JSON %s", actors.ErrInvalidParameter, field, want, kind)
}

// skip reads a value of any kind, and all it holds, without decoding it.
func (d *jsonDecoder) skip() error {
	// open holds the '{' or '[' of each array and object being read,
	// the innermost last.
	var first [32]byte
	open := first[:0]
	for {
		if d.pos == len(d.data) {
			return d.syntax("where a value should be")
		}
		switch c := d.data[d.pos]; c {
		case '{', '[':
			d.pos++
			if d.depth++; d.depth > maxJSONDepth {
				return fmt.Errorf("%w: malformed JSON: arrays and objects nest more than %d deep", actors.ErrInvalidParameter, maxJSONDepth)
			}
			d.ws()
			if d.pos < len(d.data) && d.data[d.pos] == c+2 { // '}' or ']'
				d.pos++
				d.depth--
				break
			}
			open = append(open, c)
			if c == '{' {
				if _, err := d.name(); err != nil {
					return err
				}
			}
			continue
		case '"':
			if _, err := d.str(); err != nil {
				return err
			}
		case 't':
			if err := d.literal("true"); err != nil {
				return err
			}
		case 'f':
			if err := d.literal("false"); err != nil {
				return err
			}
		case 'n':
			if err := d.null(); err != nil {
				return err
			}
		default:
			if _, err := d.number(); err != nil {
				return err
			}
		}
		// A value ended: close what it ends, then go on to the next.
		for {
			if len(open) == 0 {
				return nil
			}
			c := open[len(open)-1]
			done, err := d.next(c + 2)
			if err != nil {
				return err
			}
			if !done {
				break
			}
			open = open[:len(open)-1]
		}
		if open[len(open)-1] == '{' {
			if _, err := d.name(); err != nil {
				return err
			}
		}
	}
}
