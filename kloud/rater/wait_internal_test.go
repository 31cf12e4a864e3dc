package rater

import "testing"

// TestProcessorWait: the server's explicit 0 (no wait) reaches the
// processor, which reads 0 as its default, as a negative value.
func TestProcessorWait(t *testing.T) {
	for in, want := range map[int]int{0: -1, 1: 1, 3: 3} {
		if got := processorWait(in); got != want {
			t.Errorf("processorWait(%d) = %d, want %d", in, got, want)
		}
	}
}
