// Package docs holds Kloud's guides (Markdown) and reads the Go code in
// them, so tests can check that it compiles and runs.
package docs

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Block is one ```go block of a guide: a whole Go file whose first line
// is "// file: <path in the module>".
type Block struct {
	// Line is the guide's line of the block's first line of code.
	Line int
	// Path is the file's path in the module, from its first line.
	Path string
	Code string
}

// GoBlocks extracts the ```go blocks of a guide. A block without its
// "// file:" line, or one left open, is an error naming its line.
func GoBlocks(md []byte) ([]Block, error) {
	var (
		out  []Block
		cur  *Block
		code strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(md))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur = &Block{Line: n + 1}
			code.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.Code = code.String()
			first, _, _ := strings.Cut(cur.Code, "\n")
			p, ok := strings.CutPrefix(first, "// file: ")
			if !ok || strings.TrimSpace(p) == "" {
				return nil, fmt.Errorf("line %d: a Go block must start with \"// file: <path in the module>\"", cur.Line)
			}
			cur.Path = strings.TrimSpace(p)
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			code.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read guide: %w", err)
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: unterminated Go block", cur.Line)
	}
	return out, nil
}
