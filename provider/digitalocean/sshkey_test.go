package digitalocean

import (
	"bytes"
	"crypto/ed25519"
	"crypto/md5"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSSHKeyRoundTrip checks the generated key's formats: the private key
// parses back to the same key, the authorized_keys line to the same public
// key, and the fingerprint is the MD5 of the key blob in DigitalOcean's
// colon form.
func TestSSHKeyRoundTrip(t *testing.T) {
	key, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	text, err := MarshalPrivateKey(key, "kloud-cred-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "-----BEGIN OPENSSH PRIVATE KEY-----\n") {
		t.Errorf("private key = %q", text[:40])
	}
	back, err := ParsePrivateKey(text)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, key) {
		t.Error("private key did not round-trip")
	}
	line := MarshalAuthorizedKey(pub, "kloud cred 1")
	if !strings.HasPrefix(line, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI") || !strings.HasSuffix(line, " kloud-cred-1") {
		t.Errorf("authorized key = %q", line)
	}
	pub2, err := ParseAuthorizedKey(line)
	if err != nil || !bytes.Equal(pub2, pub) {
		t.Fatalf("ParseAuthorizedKey = %x, %v", pub2, err)
	}
	blob, _ := base64.StdEncoding.DecodeString(strings.Fields(line)[1])
	sum := md5.Sum(blob)
	fp := Fingerprint(pub)
	if len(fp) != 47 || strings.ReplaceAll(fp, ":", "") != string(hexOf(sum[:])) {
		t.Errorf("fingerprint = %s", fp)
	}
}

func hexOf(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

// TestSSHKeyParseErrors checks that malformed keys are refused with
// ErrKeyFormat, never a panic.
func TestSSHKeyParseErrors(t *testing.T) {
	good, err := MarshalPrivateKey(fixedKey(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(good))
	reencode := func(b []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: b}))
	}
	encrypted := bytes.Replace(block.Bytes, []byte("\x00\x00\x00\x04none"), []byte("\x00\x00\x00\x04aesx"), 1)
	tests := map[string]string{
		"empty":     "",
		"wrong pem": string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("x")})),
		"truncated": reencode(block.Bytes[:len(block.Bytes)/2]),
		"encrypted": reencode(encrypted),
		"no magic":  reencode([]byte("not a key")),
	}
	for name, text := range tests {
		if _, err := ParsePrivateKey(text); !errors.Is(err, ErrKeyFormat) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	for _, line := range []string{"", "ssh-ed25519", "ssh-rsa AAAAB3NzaC1yc2E=", "ssh-ed25519 !!!", "ssh-ed25519 " + base64.StdEncoding.EncodeToString([]byte("\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x02ab"))} {
		if _, err := ParseAuthorizedKey(line); !errors.Is(err, ErrKeyFormat) {
			t.Errorf("ParseAuthorizedKey(%q): err = %v", line, err)
		}
	}
}

// TestSSHKeyWithOpenSSH checks both halves with ssh-keygen when it is
// installed: it derives the same public key from the private file and
// computes the same MD5 fingerprint.
func TestSSHKeyWithOpenSSH(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed")
	}
	key := fixedKey()
	pub := key.Public().(ed25519.PublicKey)
	text, err := MarshalPrivateKey(key, "kloud", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	privPath, pubPath := filepath.Join(dir, "id"), filepath.Join(dir, "id.pub")
	if err := os.WriteFile(privPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubPath, []byte(MarshalAuthorizedKey(pub, "kloud")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keygen, "-y", "-f", privPath).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v", err)
	}
	if got := strings.Fields(string(out)); len(got) < 2 || got[1] != strings.Fields(MarshalAuthorizedKey(pub, ""))[1] {
		t.Errorf("ssh-keygen -y = %q", out)
	}
	out, err = exec.Command(keygen, "-l", "-E", "md5", "-f", pubPath).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v", err)
	}
	if !strings.Contains(string(out), "MD5:"+Fingerprint(pub)) {
		t.Errorf("ssh-keygen -l = %q, want MD5:%s", out, Fingerprint(pub))
	}
}
