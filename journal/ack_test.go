package journal

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestParseAck(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		header  nats.Header
		seq     uint64
		wantErr error
	}{
		{"ok", `{"stream":"TALLY_JOURNAL","seq":42}`, nil, 42, nil},
		{"ok with domain", `{"stream":"TALLY_JOURNAL","domain":"hub","seq":7,"duplicate":false}`, nil, 7, nil},
		{"wrong last sequence", `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"TALLY_JOURNAL","seq":0}`, nil, 0, ErrConflict},
		{"wrong last sequence, replicated", `{"error":{"code":400,"err_code":10164,"description":"wrong last sequence"}}`, nil, 0, ErrConflict},
		{"no responders", ``, nats.Header{"Status": []string{"503"}}, 0, nats.ErrNoResponders},
		{"duplicate of an append in process", `{"error":{"code":409,"err_code":10158,"description":"duplicate message id is in process"}}`, nil, 0, errInProcess},
		{"duplicate of a stored append", `{"stream":"TALLY_JOURNAL","seq":9,"duplicate":true}`, nil, 9, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, err := parseAck(&nats.Msg{Data: []byte(tt.data), Header: tt.header})
			if seq != tt.seq || !errors.Is(err, tt.wantErr) {
				t.Errorf("parseAck(%s) = %d, %v; want %d, %v", tt.data, seq, err, tt.seq, tt.wantErr)
			}
		})
	}
	if _, err := parseAck(&nats.Msg{Data: []byte(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`)}); err == nil || errors.Is(err, ErrConflict) {
		t.Errorf("another API error = %v, want a non-conflict error", err)
	}
	if _, err := parseAck(&nats.Msg{Data: []byte(`garbage`)}); err == nil {
		t.Errorf("garbage acknowledgement gave no error")
	}
}
