package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf16"
	"unicode/utf8"
)

// output prints a command's result as a table or as JSON lines. Whatever
// it prints passes through printable or safeJSON first: the journal holds
// text that users chose (keys, request IDs, user and group IDs), and an
// operator's terminal must show it, not obey it.
type output struct {
	w    io.Writer
	json bool
	tw   *tabwriter.Writer
}

// row prints v as a JSON line, or cells as a table row.
func (o *output) row(v any, cells ...string) error {
	if o.json {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.w, "%s\n", safeJSON(b))
		return err
	}
	if o.tw == nil {
		o.tw = tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
	}
	shown := make([]string, len(cells))
	for i, c := range cells {
		shown[i] = printable(c)
	}
	_, err := fmt.Fprintln(o.tw, strings.Join(shown, "\t"))
	return err
}

// header prints a table's header row; JSON lines have none.
func (o *output) header(cells ...string) error {
	if o.json {
		return nil
	}
	return o.row(nil, cells...)
}

// text prints a line of the table form only; its string arguments are
// shown printable.
func (o *output) text(format string, args ...any) error {
	if o.json {
		return nil
	}
	if err := o.flush(); err != nil {
		return err
	}
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = printable(s)
		}
	}
	_, err := fmt.Fprintf(o.w, format+"\n", args...)
	return err
}

func (o *output) flush() error {
	if o.tw == nil {
		return nil
	}
	err := o.tw.Flush()
	o.tw = nil
	return err
}

// printable shows s as text that a terminal displays and cannot take for
// a command or a change of layout: a control character (C0, C1, DEL,
// tab), a format character (bidi overrides and isolates such as U+202E,
// marks such as U+200E, zero-width characters), any other rune that
// strconv.IsPrint refuses, and a byte that is not UTF-8 are written as Go
// escapes (\x1b, \u202e, \xff), and a backslash as \\, so that no text
// can pass for an escape. Everything else is shown as it is.
func printable(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case strconv.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r) // '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

// isPlain reports whether s is printable ASCII without a backslash.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '\\' {
			return false
		}
	}
	return true
}

// safeJSON escapes, in JSON that json.Marshal wrote, every rune that
// strconv.IsPrint refuses as \uXXXX: json.Marshal escapes C0 controls but
// writes DEL, C1 controls and format characters (U+202E) as they are.
// Outside its strings such JSON holds no rune to escape.
func safeJSON(b []byte) []byte {
	plain := true
	for _, c := range b {
		plain = plain && c >= ' ' && c <= '~'
	}
	if plain {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case strconv.IsPrint(r) && (r != utf8.RuneError || size > 1):
			out = append(out, b[:size]...)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		b = b[size:]
	}
	return out
}
