package gateway

import (
	"encoding/json"
	"testing"

	"github.com/tallyhq/tally/messages"
)

// FuzzAppendJSON checks that the hand-written JSON is valid and decodes
// back to the same values with encoding/json.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{"", "key1", `q"uote\back`, "tab\tnew\nline\x00", "ünï€😀", "\xff\xfe", "\u2028"} {
		f.Add(s, int64(-42))
	}
	f.Fuzz(func(t *testing.T, s string, v int64) {
		b := AppendJSON(nil, &messages.GetReply{GroupId: s, Counters: map[string]int64{s: v, "z": 1}})
		var got struct {
			GroupID  string           `json:"groupID"`
			Counters map[string]int64 `json:"counters"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("AppendJSON(%q) = %s: invalid JSON: %v", s, b, err)
		}
		want, _ := json.Marshal(s) // encoding/json also turns invalid UTF-8 into U+FFFD
		var wantS string
		if err := json.Unmarshal(want, &wantS); err != nil {
			t.Fatal(err)
		}
		if got.GroupID != wantS || got.Counters[wantS] != v && wantS != "z" {
			t.Errorf("AppendJSON(%q, %d) decodes to %q, %v", s, v, got.GroupID, got.Counters)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	u := &messages.Update{GroupId: "@TGS#2abc", Key: "likes", Value: 123456, Seq: 42}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], u)
	}
}
