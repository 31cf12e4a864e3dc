// Package jsonenc appends JSON values as encoding/json writes them, byte
// for byte, without reflection: for the hot paths that encode many small
// values (quote answers, billing reports). Their tests compare them with
// encoding/json.
package jsonenc

import (
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// String appends s quoted as encoding/json quotes it (HTML-escaped): plain
// ASCII directly, anything else through encoding/json itself.
func String(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// StringMap appends m as encoding/json encodes a map[string]string: keys
// sorted, null for a nil map.
func StringMap(b []byte, m map[string]string) []byte {
	return appendMap(b, m, ":", "", "")
}

// StringMapIndent appends m as json.MarshalIndent encodes a
// map[string]string nested in an indented value: each entry on its own
// line starting with inner (a newline, the prefix and the entry's
// indentation), the closing brace after outer (the same for the map's own
// level); an empty map is "{}", a nil one null.
func StringMapIndent(b []byte, m map[string]string, outer, inner string) []byte {
	return appendMap(b, m, ": ", outer, inner)
}

// appendMap appends m's entries by key, each after inner and with colon
// between key and value, and outer before the closing brace.
func appendMap(b []byte, m map[string]string, colon, outer, inner string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	if len(m) == 0 {
		return append(b, "{}"...)
	}
	var buf [8]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, inner...)
		b = String(b, k)
		b = append(b, colon...)
		b = String(b, m[k])
	}
	b = append(b, outer...)
	return append(b, '}')
}
