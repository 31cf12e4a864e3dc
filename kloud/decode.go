package kloud

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds every request body; templates are the largest.
const maxBody = 1 << 20

// decode reads r's JSON body into v strictly: unknown fields, wrong types,
// trailing data and oversized bodies are errors naming what was wrong.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	return decodeBytes(body, v)
}

// readBody reads r's body, at most maxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(bodySize(r))
	if err := copyBody(w, r, &b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// readBodyText is readBody into a string, for a decoder that keeps slices
// of the body (without a copy of it from bytes to string).
func readBodyText(w http.ResponseWriter, r *http.Request) (string, error) {
	var b strings.Builder
	b.Grow(bodySize(r))
	if err := copyBody(w, r, &b); err != nil {
		return "", err
	}
	return b.String(), nil
}

// bodySize is the room to read r's body into at once: its declared length
// and room to read its end, up to maxBody, or 512 bytes when undeclared
// (io.ReadAll would grow its buffer by copies from 512).
func bodySize(r *http.Request) int {
	if r.ContentLength > 0 && r.ContentLength <= maxBody {
		return int(r.ContentLength) + bytes.MinRead
	}
	return bytes.MinRead
}

func copyBody(w http.ResponseWriter, r *http.Request, dst io.Writer) error {
	if _, err := io.Copy(dst, http.MaxBytesReader(w, r.Body, maxBody)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &RequestError{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
		}
		return badRequest("", "read body: %v", err)
	}
	return nil
}

// decodeBytes is decode's JSON part, fuzzed on its own.
func decodeBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "request body is empty; a JSON object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			se *json.SyntaxError
			te *json.UnmarshalTypeError
		)
		switch {
		case errors.As(err, &se):
			return badRequest("", "invalid JSON at offset %d: %v", se.Offset, err)
		case errors.As(err, &te):
			field := te.Field
			return badRequest(clipInput(field), "field %s must be %s, not %s", quote(field), jsonType(te.Type.Kind().String()), te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return badRequest(clipInput(field), "unknown field %s", quote(field))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest("", "invalid JSON: unexpected end of body")
		}
		return badRequest("", "invalid JSON: %v", err)
	}
	if dec.More() {
		return badRequest("", "invalid JSON: data after the object")
	}
	return nil
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "a list"
	case "bool":
		return "a boolean"
	default:
		return "a number"
	}
}
