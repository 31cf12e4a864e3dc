// Package secretbox encrypts Kloud's secrets at rest (credential data,
// bootstrap outputs, agent secrets, Terraform states) with AES-256-GCM. The
// key comes from the KLOUD_SECRET_KEY environment variable or from a 0600 key
// file in the data directory that Load creates on first use.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// EnvKey is the environment variable holding the secret key (any string; the
// AES key is its SHA-256).
const EnvKey = "KLOUD_SECRET_KEY"

// KeyFile is the name of the key file in the data directory: 32 random bytes,
// mode 0600.
const KeyFile = "secret.key"

// KeySize is the AES-256 key size in bytes.
const KeySize = 32

// version is the first byte of every sealed value, so a later format or key
// rotation can tell old values apart.
const version byte = 1

// Sentinel errors.
var (
	// ErrDecrypt: the value was not sealed with this key, or was altered.
	ErrDecrypt = errors.New("cannot decrypt: wrong key or tampered value")
	// ErrKeyFile: the key file is unusable (wrong size, or readable by group
	// or others).
	ErrKeyFile = errors.New("unusable key file")
)

// Box seals and opens values with one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("new secret box: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("new secret box: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("new secret box: %w", err)
	}
	return &Box{aead: aead}, nil
}

// FromPassphrase returns a Box whose key is the SHA-256 of passphrase, the
// way Load treats KLOUD_SECRET_KEY.
func FromPassphrase(passphrase string) (*Box, error) {
	if passphrase == "" {
		return nil, fmt.Errorf("new secret box: empty passphrase")
	}
	sum := sha256.Sum256([]byte(passphrase))
	return New(sum[:])
}

// Load returns the Box for a data directory: the key from KLOUD_SECRET_KEY
// when set, otherwise from <dataDir>/secret.key, which is created (32 random
// bytes, mode 0600, the directory 0700) when missing. A key file readable or
// writable by group or others, or of the wrong size, is refused with
// ErrKeyFile.
func Load(dataDir string) (*Box, error) {
	if v := os.Getenv(EnvKey); v != "" {
		return FromPassphrase(v)
	}
	key, err := loadKeyFile(dataDir)
	if err != nil {
		return nil, err
	}
	return New(key)
}

func loadKeyFile(dataDir string) ([]byte, error) {
	if dataDir == "" {
		return nil, fmt.Errorf("load secret key: empty data dir")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("load secret key: %w", err)
	}
	path := filepath.Join(dataDir, KeyFile)
	key, err := readKeyFile(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key = make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, fmt.Errorf("generate secret key: %w", err)
	}
	if err := writeKeyFile(path, key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			return readKeyFile(path)
		}
		return nil, err
	}
	return key, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("read secret key %s: mode %04o is open to group or others, want 0600: %w", path, perm, ErrKeyFile)
	}
	key, err := io.ReadAll(io.LimitReader(f, KeySize+1))
	if err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("read secret key %s: %d bytes, want %d: %w", path, len(key), KeySize, ErrKeyFile)
	}
	return key, nil
}

// writeKeyFile creates the key file exclusively, so two processes starting on
// a fresh data dir end up with one key. The key is written to a temporary
// file first and linked into place, so no reader ever sees a partial key.
func writeKeyFile(path string, key []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret.key-*")
	if err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write secret key: %w", err)
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return fmt.Errorf("write secret key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write secret key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	// Link fails with EEXIST when another process won the race.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	return nil
}

// Overhead is how many bytes Seal adds to a value.
func (b *Box) Overhead() int { return 1 + b.aead.NonceSize() + b.aead.Overhead() }

// Seal encrypts plain with a fresh random nonce: version byte, nonce, then
// the ciphertext with its tag.
func (b *Box) Seal(plain []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plain)+b.aead.Overhead())
	out[0] = version
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, fmt.Errorf("seal secret: %w", err)
	}
	return b.aead.Seal(out, out[1:], plain, nil), nil
}

// Open decrypts a value Seal produced. A value sealed with another key, cut
// short or altered in any byte fails with ErrDecrypt; it never yields
// garbage.
func (b *Box) Open(sealed []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < 1+ns+b.aead.Overhead() {
		return nil, fmt.Errorf("open secret: %d bytes is too short: %w", len(sealed), ErrDecrypt)
	}
	if sealed[0] != version {
		return nil, fmt.Errorf("open secret: unknown format version %d: %w", sealed[0], ErrDecrypt)
	}
	plain, err := b.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], nil)
	if err != nil {
		return nil, fmt.Errorf("open secret: %w", ErrDecrypt)
	}
	return plain, nil
}

// SealField seals one secret field of a record, naming it in the error; an
// empty field stays empty (nil), so "no secret" needs no ciphertext.
func (b *Box) SealField(what string, plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return nil, nil
	}
	sealed, err := b.Seal(plain)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", what, err)
	}
	return sealed, nil
}

// OpenField opens what SealField sealed; empty stays nil.
func (b *Box) OpenField(what string, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	plain, err := b.Open(sealed)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", what, err)
	}
	return plain, nil
}

// ErrKeyMismatch: a database was opened with another key than the one it
// was sealed with (two replicas started with different keys, or a data dir
// moved without its key).
var ErrKeyMismatch = errors.New("the secret key does not match the one this database was sealed with; set KLOUD_SECRET_KEY to the key of the other replicas")

// checkPlain is what a key check value seals.
const checkPlain = "kloud key check v1"

// SealCheck returns the check value a database records at its first open,
// so every later open can tell whether it holds the same key.
func (b *Box) SealCheck() ([]byte, error) {
	return b.SealField("key check", []byte(checkPlain))
}

// VerifyCheck returns nil when sealed is a check value SealCheck made with
// this box's key, and ErrKeyMismatch otherwise.
func (b *Box) VerifyCheck(sealed []byte) error {
	plain, err := b.OpenField("key check", sealed)
	if err != nil || string(plain) != checkPlain {
		return ErrKeyMismatch
	}
	return nil
}
