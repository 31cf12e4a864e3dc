package jsonenc

import (
	"encoding/json"
	"testing"
)

// TestMatchesEncodingJSON: every helper writes what encoding/json writes.
func TestMatchesEncodingJSON(t *testing.T) {
	maps := []map[string]string{
		nil,
		{},
		{"a": "b"},
		{"z": "1", "a": "2", "m": "<&>", "é": "\n\"\\", "": "", "\u2028": "\x01"},
		{"k1": "v", "k2": "v", "k3": "v", "k4": "v", "k5": "v", "k6": "v", "k7": "v", "k8": "v", "k9": "v", "k10": "v"},
	}
	for _, m := range maps {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := StringMap(nil, m); string(got) != string(want) {
			t.Errorf("StringMap(%q) = %s, want %s", m, got, want)
		}
		for k, v := range m {
			for _, s := range []string{k, v} {
				want, _ := json.Marshal(s)
				if got := String(nil, s); string(got) != string(want) {
					t.Errorf("String(%q) = %s, want %s", s, got, want)
				}
			}
		}
		// Nested one level down in an indented object.
		wrapped, err := json.MarshalIndent(map[string]map[string]string{"m": m}, "  ", "\t")
		if err != nil {
			t.Fatal(err)
		}
		got := "{\n  \t\"m\": " + string(StringMapIndent(nil, m, "\n  \t", "\n  \t\t")) + "\n  }"
		if got != string(wrapped) {
			t.Errorf("StringMapIndent(%q) =\n%s\nwant\n%s", m, got, wrapped)
		}
	}
}
