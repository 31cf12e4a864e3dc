package kloud_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// benchMachine starts a server with one running sandbox machine.
func benchMachine(b *testing.B) (*kloudtest.Harness, client.Machine) {
	b.Helper()
	plainShell(b)
	h := kloudtest.New(b)
	ms := kloudtest.ApplySandbox(b, h.Admin, machinesTemplate(1))
	if len(ms) != 1 {
		b.Fatalf("machines = %v", ms)
	}
	return h, ms[0]
}

// BenchmarkTerminalKeystroke: one byte typed through Kloud to a raw
// terminal whose program echoes it, and back; prints the round trip's p50
// and p99 (target p99 < 10 ms on loopback).
func BenchmarkTerminalKeystroke(b *testing.B) {
	h, m := benchMachine(b)
	term := openTerminal(b, h.Admin, m.ID, client.TerminalOptions{Command: []string{"sh", "-c", "stty raw -echo; echo READY; exec cat"}})
	readUntil(b, term, "READY")
	n := max(b.N, 2000)
	rtts := make([]time.Duration, 0, n)
	buf := make([]byte, 64)
	b.ResetTimer()
	for range n {
		start := time.Now()
		if _, err := term.Write([]byte{'k'}); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < 1; {
			k, err := term.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			got += strings.Count(string(buf[:k]), "k")
		}
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	p50, p99 := rtts[len(rtts)/2], rtts[len(rtts)*99/100]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	fmt.Printf("terminal keystroke echo through Kloud, %d keystrokes: p50 %v, p99 %v (target p99 < 10ms)\n", n, p50, p99)
}

// readUntil reads the terminal until want appears.
func readUntil(b *testing.B, term *client.Terminal, want string) {
	b.Helper()
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), want) {
		n, err := term.Read(buf)
		if err != nil {
			b.Fatalf("read until %q: %v (%q)", want, err, seen.String())
		}
		seen.Write(buf[:n])
	}
}

// BenchmarkTerminalCat100MB: `cat` of a 100 MB file on the machine,
// through the agent's PTY, the tunnel and Kloud to the client; prints the
// throughput (target >= 50 MB/s).
func BenchmarkTerminalCat100MB(b *testing.B) {
	h, m := benchMachine(b)
	const size = 100 << 20
	mk := openTerminal(b, h.Admin, m.ID, client.TerminalOptions{Command: []string{"sh", "-c", "head -c " + strconv.Itoa(size) + " /dev/zero > big.bin"}})
	if _, err := io.Copy(io.Discard, mk); err != nil {
		b.Fatal(err)
	}
	if code, ok := mk.ExitCode(); !ok || code != 0 {
		b.Fatalf("making the file exited %d, %v", code, ok)
	}
	b.SetBytes(size)
	b.ResetTimer()
	var best float64
	for range b.N {
		term := openTerminal(b, h.Admin, m.ID, client.TerminalOptions{Command: []string{"sh", "-c", "stty raw -echo; cat big.bin"}})
		start := time.Now()
		n, err := io.Copy(io.Discard, term)
		elapsed := time.Since(start)
		if err != nil || n < size {
			b.Fatalf("read %d bytes (%v), want %d", n, err, size)
		}
		mbs := float64(n) / (1 << 20) / elapsed.Seconds()
		best = max(best, mbs)
		fmt.Printf("terminal cat of 100 MB through Kloud: %d bytes in %v, %.1f MB/s (target >= 50 MB/s)\n", n, elapsed.Round(time.Millisecond), mbs)
	}
	b.ReportMetric(best, "MB/s")
}

// BenchmarkTerminalIdleSessions: 100 idle login shells held open through
// Kloud; prints what they cost: Kloud's heap, the agent's resident memory
// and the shells' own.
func BenchmarkTerminalIdleSessions(b *testing.B) {
	h, m := benchMachine(b)
	var meta struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(m.Metadata, &meta); err != nil || meta.PID == 0 {
		b.Fatalf("no agent pid in %s", m.Metadata)
	}
	const sessions = 100
	for range b.N {
		heap0 := heapInUse()
		rss0 := rssKB(meta.PID)
		var terms []*client.Terminal
		for i := range sessions {
			term := openTerminal(b, h.Admin, m.ID, client.TerminalOptions{})
			fmt.Fprintf(term, "echo UP-%d\n", i)
			readUntil(b, term, fmt.Sprintf("UP-%d", i))
			terms = append(terms, term)
		}
		heap1 := heapInUse()
		rss1 := rssKB(meta.PID)
		shells := childrenRSSKB(meta.PID)
		kloudKB := float64(heap1-heap0) / 1024
		b.ReportMetric(kloudKB/sessions, "kloud-KB/session")
		b.ReportMetric(float64(rss1-rss0)/sessions, "agent-KB/session")
		b.ReportMetric(float64(shells)/sessions, "shell-KB/session")
		fmt.Printf("100 idle terminal sessions: Kloud heap +%.0f KiB (%.1f KiB each), agent RSS +%d KiB (%.1f KiB each), shells %d KiB RSS (%.0f KiB each)\n",
			kloudKB, kloudKB/sessions, rss1-rss0, float64(rss1-rss0)/sessions, shells, float64(shells)/sessions)
		for _, term := range terms {
			term.Close()
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// rssKB is a process's resident memory in KiB.
func rssKB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// childrenRSSKB sums the resident memory of pid's children.
func childrenRSSKB(pid int) int64 {
	entries, _ := os.ReadDir("/proc")
	var total int64
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			total += rssKB(child)
		}
	}
	return total
}
