package digitalocean

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The SSH key Kloud generates for a credential's bootstrap: an Ed25519 key
// pair. The public half goes to Terraform (digitalocean_ssh_key) in
// OpenSSH's authorized_keys format; the private half is kept, in OpenSSH's
// private key format sealed with the credential's token (see
// SealPrivateKey), with the credential's bootstrap, which the store
// encrypts. The formats are written here (they are short) rather than
// adding golang.org/x/crypto/ssh as a dependency.

const (
	keyType       = "ssh-ed25519"
	privateMagic  = "openssh-key-v1\x00"
	privatePEM    = "OPENSSH PRIVATE KEY"
	maxKeyTextLen = 16 << 10
)

// ErrKeyFormat is wrapped by every key parsing error.
var ErrKeyFormat = errors.New("invalid SSH key")

// GenerateKey returns a new Ed25519 key pair read from random (crypto/rand
// when nil).
func GenerateKey(random io.Reader) (ed25519.PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, fmt.Errorf("generate ssh key: %w", err)
	}
	return priv, nil
}

// wireString appends an SSH wire-format string (uint32 length, bytes).
func wireString(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// publicBlob is the SSH wire encoding of an Ed25519 public key.
func publicBlob(pub ed25519.PublicKey) []byte {
	return wireString(wireString(nil, []byte(keyType)), pub)
}

// MarshalAuthorizedKey returns pub as an authorized_keys line:
// "ssh-ed25519 <base64> comment" (no newline).
func MarshalAuthorizedKey(pub ed25519.PublicKey, comment string) string {
	s := keyType + " " + base64.StdEncoding.EncodeToString(publicBlob(pub))
	if comment = strings.Join(strings.Fields(comment), "-"); comment != "" {
		s += " " + comment
	}
	return s
}

// ParseAuthorizedKey reads an Ed25519 public key from an authorized_keys line.
func ParseAuthorizedKey(line string) (ed25519.PublicKey, error) {
	fields := strings.Fields(line)
	if len(fields) < 2 || len(line) > maxKeyTextLen {
		return nil, fmt.Errorf("%w: want \"ssh-ed25519 <base64> [comment]\"", ErrKeyFormat)
	}
	if fields[0] != keyType {
		return nil, fmt.Errorf("%w: key type %q, want %s", ErrKeyFormat, fields[0], keyType)
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFormat, err)
	}
	r := wireReader{b: blob}
	typ, pub := r.string(), r.string()
	if r.err != nil || string(typ) != keyType || len(pub) != ed25519.PublicKeySize || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: not an Ed25519 public key blob", ErrKeyFormat)
	}
	return ed25519.PublicKey(pub), nil
}

// Fingerprint is the key's MD5 fingerprint as DigitalOcean shows it:
// 16 lower-case hex pairs joined by colons.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := md5.Sum(publicBlob(pub))
	h := hex.EncodeToString(sum[:])
	parts := make([]string, 0, 16)
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// MarshalPrivateKey returns key in OpenSSH's private key format, not
// encrypted (the store encrypts it), as `ssh -i` reads it. checkRandom
// supplies the format's check integer (crypto/rand when nil).
func MarshalPrivateKey(key ed25519.PrivateKey, comment string, checkRandom io.Reader) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("marshal ssh key: %w: want %d bytes, got %d", ErrKeyFormat, ed25519.PrivateKeySize, len(key))
	}
	if checkRandom == nil {
		checkRandom = rand.Reader
	}
	var check [4]byte
	if _, err := io.ReadFull(checkRandom, check[:]); err != nil {
		return "", fmt.Errorf("marshal ssh key: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	var priv []byte
	priv = append(priv, check[:]...)
	priv = append(priv, check[:]...)
	priv = wireString(priv, []byte(keyType))
	priv = wireString(priv, pub)
	priv = wireString(priv, key)
	priv = wireString(priv, []byte(comment))
	for i := byte(1); len(priv)%8 != 0; i++ {
		priv = append(priv, i)
	}
	out := []byte(privateMagic)
	out = wireString(out, []byte("none"))
	out = wireString(out, []byte("none"))
	out = wireString(out, nil)
	out = binary.BigEndian.AppendUint32(out, 1)
	out = wireString(out, publicBlob(pub))
	out = wireString(out, priv)
	return string(pem.EncodeToMemory(&pem.Block{Type: privatePEM, Bytes: out})), nil
}

// ParsePrivateKey reads an unencrypted Ed25519 key in OpenSSH's private
// key format.
func ParsePrivateKey(text string) (ed25519.PrivateKey, error) {
	if len(text) > maxKeyTextLen {
		return nil, fmt.Errorf("%w: too long", ErrKeyFormat)
	}
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != privatePEM {
		return nil, fmt.Errorf("%w: want a PEM block of type %q", ErrKeyFormat, privatePEM)
	}
	if !bytes.HasPrefix(block.Bytes, []byte(privateMagic)) {
		return nil, fmt.Errorf("%w: not an openssh-key-v1 key", ErrKeyFormat)
	}
	r := wireReader{b: block.Bytes[len(privateMagic):]}
	cipher, kdf, _ := r.string(), r.string(), r.string()
	n := r.uint32()
	pubBlob, priv := r.string(), r.string()
	if r.err != nil {
		return nil, fmt.Errorf("%w: truncated", ErrKeyFormat)
	}
	if string(cipher) != "none" || string(kdf) != "none" {
		return nil, fmt.Errorf("%w: encrypted keys (cipher %q) are not supported", ErrKeyFormat, cipher)
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: %d keys, want 1", ErrKeyFormat, n)
	}
	pr := wireReader{b: priv}
	c1, c2 := pr.uint32(), pr.uint32()
	typ, pub, secret := pr.string(), pr.string(), pr.string()
	_ = pr.string() // comment
	if pr.err != nil {
		return nil, fmt.Errorf("%w: truncated private section", ErrKeyFormat)
	}
	switch {
	case c1 != c2:
		return nil, fmt.Errorf("%w: check integers differ", ErrKeyFormat)
	case string(typ) != keyType:
		return nil, fmt.Errorf("%w: key type %q, want %s", ErrKeyFormat, typ, keyType)
	case len(pub) != ed25519.PublicKeySize || len(secret) != ed25519.PrivateKeySize:
		return nil, fmt.Errorf("%w: wrong Ed25519 key sizes", ErrKeyFormat)
	case !bytes.Equal(publicBlob(pub), pubBlob):
		return nil, fmt.Errorf("%w: the public and private sections disagree", ErrKeyFormat)
	}
	key := ed25519.NewKeyFromSeed(secret[:ed25519.SeedSize])
	if !bytes.Equal(key.Public().(ed25519.PublicKey), pub) {
		return nil, fmt.Errorf("%w: the private key does not match its public key", ErrKeyFormat)
	}
	return key, nil
}

// wireReader reads SSH wire-format values; the first error sticks.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) uint32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = io.ErrUnexpectedEOF
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *wireReader) string() []byte {
	n := r.uint32()
	if r.err != nil || uint64(n) > uint64(len(r.b)) {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

// The private key passes through Terraform (a sensitive variable, then a
// sensitive output of the bootstrap) to reach the credential's stored
// bootstrap. Terraform keeps outputs in its state, and the runner's working
// directory holds a copy of the state under Kloud's data dir, so the key is
// sealed first: AES-256-GCM under a key derived (HKDF-SHA256) from the
// credential's token, bound to the credential's ID. The state and the
// stored bootstrap hold only the sealed form; the store encrypts the
// latter again at rest.

// sealedPrefix starts a sealed private key.
const sealedPrefix = "kloud-sealed:v1:"

// ErrSealedKey is wrapped by every failure to open a sealed key.
var ErrSealedKey = errors.New("cannot open the sealed SSH private key")

func sealingAEAD(token, credentialID string) (cipher.AEAD, error) {
	if token == "" || credentialID == "" {
		return nil, fmt.Errorf("%w: no token or credential ID", ErrSealedKey)
	}
	k, err := hkdf.Key(sha256.New, []byte(token), []byte(credentialID), "kloud/digitalocean/bootstrap-ssh-key/v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	return cipher.NewGCM(block)
}

// SealPrivateKey seals a private key (its text) for credentialID with the
// credential's token; random supplies the nonce (crypto/rand when nil).
func SealPrivateKey(text, token, credentialID string, random io.Reader) (string, error) {
	aead, err := sealingAEAD(token, credentialID)
	if err != nil {
		return "", err
	}
	if random == nil {
		random = rand.Reader
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(random, nonce); err != nil {
		return "", fmt.Errorf("seal ssh key: %w", err)
	}
	out := aead.Seal(nonce, nonce, []byte(text), []byte(credentialID))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// OpenPrivateKey opens a key sealed by SealPrivateKey and parses it.
func OpenPrivateKey(sealed, token, credentialID string) (ed25519.PrivateKey, string, error) {
	raw, err := sealedBytes(sealed)
	if err != nil {
		return nil, "", err
	}
	aead, err := sealingAEAD(token, credentialID)
	if err != nil {
		return nil, "", err
	}
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, "", fmt.Errorf("%w: too short", ErrSealedKey)
	}
	text, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(credentialID))
	if err != nil {
		return nil, "", fmt.Errorf("%w: not sealed with this credential's token", ErrSealedKey)
	}
	key, err := ParsePrivateKey(string(text))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrSealedKey, err)
	}
	return key, string(text), nil
}

// sealedBytes checks a sealed key's form and decodes it.
func sealedBytes(sealed string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrSealedKey, sealedPrefix)
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(raw) > maxKeyTextLen {
		return nil, fmt.Errorf("%w: not base64 of a sealed key", ErrSealedKey)
	}
	return raw, nil
}
