package kloud

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/internal/jsonenc"
	"github.com/kloud/kloud/ratingbridge"
)

// The quote endpoint's JSON: a quote of 5,000 points is a body of about a
// megabyte, and decoding it with encoding/json (reflection, a map per
// point, an interface per qty) cost more than pricing it. decodeQuoteFast
// reads the plain shape of a quote in one pass, its strings slices of the
// body; anything else (escapes, non-ASCII text, null, an unknown field,
// bad syntax) makes it give up, and the request goes through decode, which
// words the error. A desc written as the answer writes it stays text: the
// answer copies it, and its pricing map (descMaps) holds only the keys the
// rating reads, one map for the points that agree on them.
// writeQuoteAnswer writes the answer as writeJSON would, byte for byte, in
// chunks. TestQuoteFastPathMatchesPlainPath and FuzzQuoteFastPath compare
// both with the plain path, TestQuoteFastAndPlainPathsAnswerAlike on a
// server; BenchmarkQuote100k and BenchmarkQuoteHandler are the figures
// they serve.

// quoteFast answers a quote whose body decodeQuoteFast reads, and reports
// whether it did; handleQuote answers any other. The pipeline loads (store
// reads) while the body is decoded; a body's errors come first, as on the
// plain path, and the load is waited for either way.
func (s *Server) quoteFast(w http.ResponseWriter, r *http.Request, body string) bool {
	type loaded struct {
		rating *ratingbridge.Rating
		err    error
	}
	load := make(chan loaded, 1)
	go func() {
		rating, err := s.rating.Pipeline().LoadQuote(r.Context())
		load <- loaded{rating, err}
	}()
	points, descs, entries, ok := decodeQuoteFast(body)
	l := <-load
	if !ok {
		return false
	}
	if err := ratingbridge.CheckQuote(points); err != nil {
		s.writeError(w, r, err)
		return true
	}
	if l.err != nil {
		s.writeError(w, r, l.err)
		return true
	}
	descMaps(l.rating, body, points, descs, entries)
	rated, err := l.rating.Price(r.Context(), points)
	if err != nil {
		s.writeError(w, r, err)
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = writeQuoteAnswer(w, points, rated, descs) // a client gone is no error of ours
	return true
}

type quoteScanner struct {
	// b is the body: the strings read are slices of it.
	b string
	i int
	// qtys holds the Decimal of each qty text read (quotes included for
	// a string), at most maxQtyMemo: a quote's qtys repeat from point to
	// point, and Decimals are immutable.
	qtys map[string]decimal.Decimal
	// entries are the entries of the desc texts kept (see descEntries).
	entries descEntries
}

// descEntries locates the entries of the desc texts decodeQuoteFast keeps,
// for descMaps to read without scanning them again: point i's are
// bounds[from[i]:from[i+1]], each an entry's key and value as offsets in
// the body (key start and end, value start and end).
type descEntries struct {
	from   []int32
	bounds [][4]int32
}

const maxQtyMemo = 256

func (s *quoteScanner) ws() {
	i := s.i
	for i < len(s.b) && (s.b[i] == ' ' || s.b[i] == '\t' || s.b[i] == '\n' || s.b[i] == '\r') {
		i++
	}
	s.i = i
}

// next skips white space and consumes c.
func (s *quoteScanner) next(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c { // no white space: the common case
		s.i++
		return true
	}
	return s.nextAfterSpace(c)
}

func (s *quoteScanner) nextAfterSpace(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// peek skips white space and reports whether c comes next.
func (s *quoteScanner) peek(c byte) bool {
	s.ws()
	return s.i < len(s.b) && s.b[s.i] == c
}

// str reads a string of printable ASCII without escapes.
func (s *quoteScanner) str() (string, bool) {
	v, _, ok := s.strPlain()
	return v, ok
}

// strPlain is str, and reports whether encoding/json writes the string as
// it is between quotes (jsonenc.Plain: no < > &).
func (s *quoteScanner) strPlain() (_ string, plain, ok bool) {
	if s.i < len(s.b) && s.b[s.i] == '"' { // next('"'), inlined
		s.i++
	} else if !s.nextAfterSpace('"') {
		return "", false, false
	}
	start, plain := s.i, true
	for i := start; i < len(s.b); i++ {
		c := s.b[i]
		if jsonenc.PlainByte(c) {
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			return s.b[start:i], plain, true
		case c == '<' || c == '>' || c == '&':
			plain = false
		default: // a backslash, a control character, non-ASCII
			return "", false, false
		}
	}
	return "", false, false
}

// number reads a JSON number's text.
func (s *quoteScanner) number() (string, bool) {
	s.ws()
	start := s.i
	for s.i < len(s.b) && isNumberByte(s.b[s.i]) {
		s.i++
	}
	return s.b[start:s.i], s.i > start
}

// decodeQuoteFast reads a quote body of the plain shape; ok false means
// "let the plain path decode it". Values are checked as handleQuote
// checks them: a point with a problem gives up too.
//
// descs holds, per point, its desc as the answer writes it when the body
// has it written so already ("" when not), for writeQuoteAnswer to copy,
// and entries where its entries are, for descMaps.
func decodeQuoteFast(body string) (points []ratingbridge.QuotePoint, descs []string, entries descEntries, ok bool) {
	s := &quoteScanner{b: body, qtys: make(map[string]decimal.Decimal, 16)}
	if !s.next('{') {
		return nil, nil, entries, false
	}
	if key, ok := s.str(); !ok || key != "points" || !s.next(':') || !s.next('[') {
		return nil, nil, entries, false
	}
	points = make([]ratingbridge.QuotePoint, 0, len(body)/100)
	descs = make([]string, 0, len(body)/100)
	s.entries.from = append(make([]int32, 0, len(body)/100+1), 0)
	s.entries.bounds = make([][4]int32, 0, len(body)/40)
	for first := true; !s.next(']'); first = false {
		if !first && !s.next(',') {
			return nil, nil, entries, false
		}
		p, desc, ok := s.point()
		if !ok || len(points) == ratingbridge.MaxQuotePoints {
			return nil, nil, entries, false
		}
		points = append(points, p)
		descs = append(descs, desc)
		s.entries.from = append(s.entries.from, int32(len(s.entries.bounds)))
	}
	if !s.next('}') {
		return nil, nil, entries, false
	}
	s.ws()
	return points, descs, s.entries, s.i == len(s.b) && len(points) > 0
}

func (s *quoteScanner) point() (p ratingbridge.QuotePoint, descJSON string, _ bool) {
	var seen [4]bool
	if !s.next('{') {
		return p, "", false
	}
	for first := true; !s.next('}'); first = false {
		if !first && !s.next(',') {
			return p, "", false
		}
		key, ok := s.str()
		if !ok || !s.next(':') {
			return p, "", false
		}
		var field int
		switch key {
		case "service":
			field = 0
			p.Service, ok = s.str()
		case "qty":
			field = 1
			p.Qty, ok = s.qty()
		case "unit":
			field = 2
			p.Unit, ok = s.str()
		case "desc":
			field = 3
			p.Desc, descJSON, ok = s.desc()
		default:
			return p, "", false
		}
		if !ok || seen[field] {
			return p, "", false
		}
		seen[field] = true
	}
	// Without a qty the plain path says it is required.
	return p, descJSON, seen[1]
}

// qty reads a non-negative decimal given as a number (as decode reads a
// number: a float64) or a string.
func (s *quoteScanner) qty() (decimal.Decimal, bool) {
	s.ws()
	start := s.i
	// The qty's text up to its end (a string's closing quote, a number's
	// last character), to look up before reading it.
	end := start
	if end < len(s.b) && s.b[end] == '"' {
		if j := strings.IndexByte(s.b[end+1:], '"'); j >= 0 {
			end += j + 2
		}
	} else {
		for end < len(s.b) && isNumberByte(s.b[end]) {
			end++
		}
	}
	if d, ok := s.qtys[s.b[start:end]]; ok {
		s.i = end
		return d, true
	}
	d, ok := s.qtyValue()
	if !ok {
		return d, false
	}
	if len(s.qtys) < maxQtyMemo {
		s.qtys[s.b[start:s.i]] = d
	}
	return d, true
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// qtyValue reads a qty as qty says, without the memo.
func (s *quoteScanner) qtyValue() (decimal.Decimal, bool) {
	var d decimal.Decimal
	if s.peek('"') {
		v, ok := s.str()
		if !ok {
			return d, false
		}
		var err error
		if d, err = decimal.NewFromString(v); err != nil {
			return d, false
		}
	} else {
		v, ok := s.number()
		if !ok {
			return d, false
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !json.Valid([]byte(v)) {
			return d, false
		}
		d = decimal.NewFromFloat(f)
	}
	return d, !d.IsNegative()
}

// desc reads a desc object. One written as jsonenc.StringMap writes a map
// (keys in ascending order without duplicates, no white space, no
// character String escapes) it returns as that text, without a map, for
// descMaps to build and writeQuoteAnswer to copy; any other it returns
// as a map.
func (s *quoteScanner) desc() (_ map[string]string, canonical string, _ bool) {
	if !s.next('{') {
		return nil, "", false
	}
	start := s.i - 1
	var prev string
	plain, size := true, 2 // the length of the text as StringMap writes it
	bounds := s.entries.bounds
	kept := len(bounds)
	for first := true; !s.next('}'); first = false {
		if !first && !s.next(',') {
			return nil, "", false
		}
		k, kplain, ok := s.strPlain()
		kend := s.i - 1
		if !ok || !s.next(':') {
			return nil, "", false
		}
		v, vplain, ok := s.strPlain()
		if !ok {
			return nil, "", false
		}
		vend := s.i - 1
		bounds = append(bounds, [4]int32{int32(kend - len(k)), int32(kend), int32(vend - len(v)), int32(vend)})
		plain = plain && kplain && vplain && (first || k > prev)
		prev = k
		size += len(k) + len(v) + len(`"":""`)
		if !first {
			size++ // the comma
		}
	}
	if text := s.b[start:s.i]; plain && len(text) == size {
		s.entries.bounds = bounds
		return nil, text, true
	}
	// Read it again into a map; the first pass checked its syntax.
	s.entries.bounds = bounds[:kept]
	end := s.i
	s.i = start + 1
	m := make(map[string]string, 4)
	for first := true; !s.next('}'); first = false {
		if !first {
			s.next(',')
		}
		k, _ := s.str()
		s.next(':')
		v, _ := s.str()
		m[k] = v // the last of duplicate keys wins, as in encoding/json
	}
	s.i = end
	return m, "", true
}

// nextPair returns the key and value after offset i (at the '{' or at a
// ',') of a desc text as desc returns it, and the offset after them; false
// at the end.
func nextPair(text string, i int) (k, v string, next int, ok bool) {
	if i+1 >= len(text)-1 { // at the closing brace, or an empty desc's opening one
		return "", "", i, false
	}
	j := i + len(`{"`)
	e := j + strings.IndexByte(text[j:], '"')
	k, j = text[j:e], e+len(`":"`)
	e = j + strings.IndexByte(text[j:], '"')
	return k, text[j:e], e + 1, true
}

// descMap returns the map of a desc text as desc returns it.
func descMap(text string) map[string]string {
	m := make(map[string]string, 4)
	for k, v, i, ok := nextPair(text, 0); ok; k, v, i, ok = nextPair(text, i) {
		m[k] = v
	}
	return m
}

// descMaps gives the points whose desc decodeQuoteFast kept as text
// (descs[i] != "") their Desc for pricing. When the rating tells which
// desc keys it reads from a service's points, a point's Desc holds only
// those, and the points of a service that agree on them share one map (a
// point's other keys change nothing in its price; the answer copies the
// text). Otherwise a point's Desc is its whole desc.
func descMaps(rating *ratingbridge.Rating, body string, points []ratingbridge.QuotePoint, descs []string, entries descEntries) {
	// reads is what the rating reads from a service's points.
	type reads struct {
		keys []string
		ok   bool
	}
	byService := map[string]*reads{}
	shared := map[string]map[string]string{}
	var (
		key     []byte
		r       *reads
		service string
	)
	for i, text := range descs {
		if text == "" {
			continue
		}
		p := &points[i]
		if r == nil || p.Service != service {
			service = p.Service
			if r = byService[service]; r == nil {
				r = &reads{}
				r.keys, r.ok = rating.Fields(service)
				byService[service] = r
			}
		}
		if !r.ok {
			p.Desc = descMap(text)
			continue
		}
		// The service, then the keys read with their values, each
		// NUL-terminated (a desc text holds no control character).
		read := 0
		key = append(append(key[:0], service...), 0)
		for _, b := range entries.bounds[entries.from[i]:entries.from[i+1]] {
			if k := body[b[0]:b[1]]; slices.Contains(r.keys, k) {
				key = append(append(append(append(key, k...), 0), body[b[2]:b[3]]...), 0)
				read++
			}
		}
		m, ok := shared[string(key)]
		if !ok {
			m = make(map[string]string, read)
			for _, b := range entries.bounds[entries.from[i]:entries.from[i+1]] {
				if k := body[b[0]:b[1]]; slices.Contains(r.keys, k) {
					m[k] = body[b[2]:b[3]]
				}
			}
			shared[string(key)] = m
		}
		p.Desc = m
	}
}

// quoteAnswerChunk is how much of an answer writeQuoteAnswer holds before
// it writes it: an answer is as large as its quote, and need not be held
// whole.
const quoteAnswerChunk = 32 << 10

// writeQuoteAnswer writes the answer writeJSON(w, 200, quoteResponse{…})
// writes for points as rated, byte for byte, in chunks. descs, when not
// nil, holds per point the text of its desc as decodeQuoteFast found it,
// which it copies (the point's Desc may hold only the keys its price
// depends on; "": encode the Desc).
func writeQuoteAnswer(w io.Writer, points []ratingbridge.QuotePoint, rated ratingbridge.Rated, descs []string) error {
	b := make([]byte, 0, quoteAnswerChunk+quoteAnswerChunk/4)
	b = append(b, `{"points":[`...)
	for i := range points {
		p := &points[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"service":`...)
		b = jsonenc.String(b, p.Service)
		b = append(b, `,"qty":`...)
		b = jsonenc.Decimal(b, p.Qty)
		b = append(b, `,"unit":`...)
		b = jsonenc.String(b, rated.Units[i])
		b = append(b, `,"desc":`...)
		if descs != nil && descs[i] != "" {
			b = append(b, descs[i]...)
		} else {
			b = jsonenc.StringMap(b, p.Desc)
		}
		b = append(b, `,"price":`...)
		b = jsonenc.Decimal(b, rated.Prices[i])
		b = append(b, '}')
		if len(b) >= quoteAnswerChunk {
			if _, err := w.Write(b); err != nil {
				return fmt.Errorf("write quote answer: %w", err)
			}
			b = b[:0]
		}
	}
	b = append(b, `],"total":`...)
	b = jsonenc.Decimal(b, rated.Total)
	if _, err := w.Write(append(b, "}\n"...)); err != nil {
		return fmt.Errorf("write quote answer: %w", err)
	}
	return nil
}
