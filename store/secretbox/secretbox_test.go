package secretbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	t.Setenv(EnvKey, "")
	b, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range [][]byte{nil, {}, []byte("x"), []byte(`{"access_key":"AKIA","secret":"s3cr3t"}`), bytes.Repeat([]byte{0}, 1<<16)} {
		sealed, err := b.Seal(plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != len(plain)+b.Overhead() {
			t.Errorf("sealed %d bytes into %d, want %d", len(plain), len(sealed), len(plain)+b.Overhead())
		}
		if len(plain) > 4 && bytes.Contains(sealed, plain) {
			t.Errorf("sealed value holds the plain text")
		}
		got, err := b.Open(sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("open = %q, want %q", got, plain)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	b, err := FromPassphrase("k")
	if err != nil {
		t.Fatal(err)
	}
	x, _ := b.Seal([]byte("same"))
	y, _ := b.Seal([]byte("same"))
	if bytes.Equal(x, y) {
		t.Fatal("two seals of the same value are equal: nonce reused")
	}
}

func TestOpenRefusesTamperedAndForeign(t *testing.T) {
	b, _ := FromPassphrase("one")
	other, _ := FromPassphrase("two")
	sealed, err := b.Seal([]byte("credential data"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":       nil,
		"short":       sealed[:10],
		"truncated":   sealed[:len(sealed)-1],
		"bad version": append([]byte{9}, sealed[1:]...),
	}
	for i := range sealed {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		cases[fmt.Sprintf("flip byte %d", i)] = c
	}
	for name, c := range cases {
		if _, err := b.Open(c); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: open = %v, want ErrDecrypt", name, err)
		}
	}
	if _, err := other.Open(sealed); !errors.Is(err, ErrDecrypt) {
		t.Errorf("open with another key = %v, want ErrDecrypt", err)
	}
}

func TestLoadCreatesKeyFile0600AndReusesIt(t *testing.T) {
	t.Setenv(EnvKey, "")
	dir := filepath.Join(t.TempDir(), "data")
	b1, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != KeySize {
		t.Fatalf("key file mode %v size %d, want 0600 and %d", st.Mode().Perm(), st.Size(), KeySize)
	}
	sealed, _ := b1.Seal([]byte("v"))
	b2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b2.Open(sealed); err != nil || string(got) != "v" {
		t.Fatalf("second Load cannot open the first one's value: %q, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the key file", len(entries))
	}
}

func TestLoadConcurrentFirstStartAgreesOnOneKey(t *testing.T) {
	t.Setenv(EnvKey, "")
	dir := t.TempDir()
	var wg sync.WaitGroup
	boxes := make([]*Box, 8)
	errs := make([]error, len(boxes))
	for i := range boxes {
		wg.Go(func() { boxes[i], errs[i] = Load(dir) })
	}
	wg.Wait()
	sealed, _ := boxes[0].Seal([]byte("v"))
	for i, b := range boxes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if _, err := b.Open(sealed); err != nil {
			t.Errorf("box %d has another key: %v", i, err)
		}
	}
}

func TestLoadRefusesBadKeyFiles(t *testing.T) {
	t.Setenv(EnvKey, "")
	cases := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"group readable", bytes.Repeat([]byte{1}, KeySize), 0o640},
		{"world readable", bytes.Repeat([]byte{1}, KeySize), 0o604},
		{"short", []byte("short"), 0o600},
		{"long", bytes.Repeat([]byte{1}, KeySize+1), 0o600},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFile)
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(dir); !errors.Is(err, ErrKeyFile) {
				t.Fatalf("Load = %v, want ErrKeyFile", err)
			}
		})
	}
}

func TestLoadPrefersEnvKey(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvKey, "my passphrase")
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); !os.IsNotExist(err) {
		t.Errorf("key file created although %s is set: %v", EnvKey, err)
	}
	same, _ := FromPassphrase("my passphrase")
	sealed, _ := b.Seal([]byte("v"))
	if _, err := same.Open(sealed); err != nil {
		t.Errorf("env key is not SHA-256 of the passphrase: %v", err)
	}
}

func TestNewRefusesWrongKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New with %d-byte key succeeded", n)
		}
	}
	if _, err := FromPassphrase(""); err == nil {
		t.Error("FromPassphrase(\"\") succeeded")
	}
}

func TestKeyCheckValue(t *testing.T) {
	one, _ := FromPassphrase("one")
	two, _ := FromPassphrase("two")
	sealed, err := one.SealCheck()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := one.Seal([]byte("not a check value"))
	for _, c := range []struct {
		name   string
		box    *Box
		sealed []byte
		want   error
	}{
		{"same key", one, sealed, nil},
		{"other key", two, sealed, ErrKeyMismatch},
		{"not a check value", one, other, ErrKeyMismatch},
		{"empty", one, nil, ErrKeyMismatch},
	} {
		if err := c.box.VerifyCheck(c.sealed); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: VerifyCheck = %v, want %v", c.name, err, c.want)
		}
	}
}
