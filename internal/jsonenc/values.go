package jsonenc

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// Time appends t as encoding/json encodes a time.Time: RFC 3339 with
// nanoseconds, quoted. A UTC time of years 0 to 9999 is formatted
// directly; any other goes through encoding/json itself, errors included.
func Time(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); t.Location() == time.UTC && y >= 0 && y <= 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"'), nil
	}
	q, err := json.Marshal(t)
	return append(b, q...), err
}

// Raw appends raw as encoding/json encodes a json.RawMessage: null when
// nil, else checked and compacted, with <, > and & escaped. Valid JSON
// that compacting and escaping leave as it is (no white space, plain
// ASCII, none of <>&) is appended as it is; anything else goes through
// encoding/json itself, errors included.
func Raw(b []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(b, "null"...), nil
	}
	if unchanged(raw) && json.Valid(raw) {
		return append(b, raw...), nil
	}
	q, err := json.Marshal(raw)
	return append(b, q...), err
}

// unchanged reports whether compacting and HTML-escaping leave raw as it
// is, assuming it is valid JSON.
func unchanged(raw []byte) bool {
	for _, c := range raw {
		switch {
		case c == ' ', c == '\t', c == '\n', c == '\r', c == '<', c == '>', c == '&', c >= utf8.RuneSelf:
			return false
		}
	}
	return true
}
