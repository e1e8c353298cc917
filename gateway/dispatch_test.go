package gateway

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/messages"
)

// TestAppendChangeReply: the hand-written encoding of an increase's reply
// is proto.Marshal's, byte for byte, and appends to what b holds.
func TestAppendChangeReply(t *testing.T) {
	cases := []*messages.ChangeReply{
		{},
		{GroupId: "g"},
		{Key: "likes"},
		{Value: 1},
		{GroupId: "room-1", Key: "likes", Value: 42},
		{GroupId: "g", Key: "k", Value: -1},
		{GroupId: "g", Key: "k", Value: math.MaxInt64},
		{GroupId: "g", Key: "k", Value: math.MinInt64},
		{GroupId: "@TGS#a", Key: "点赞", Value: 7},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		cases = append(cases, &messages.ChangeReply{GroupId: string(rune('a' + r.IntN(26))), Key: string(make([]byte, r.IntN(200))), Value: r.Int64() - r.Int64()})
	}
	for _, c := range cases {
		want, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got := appendChangeReply([]byte("prefix"), c)
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("appendChangeReply(%v) = %x, want prefix then %x", c, got, want)
		}
	}
}
