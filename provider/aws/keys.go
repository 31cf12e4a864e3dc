package aws

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
)

// keyPairLabel versions the derivation of KeyPair: changing it would
// give every credential a new key pair.
const keyPairLabel = "kloud aws key pair v1"

// KeyPairName is the name of the EC2 key pair the bootstrap of credential
// credentialID imports.
func KeyPairName(credentialID string) string { return "kloud-" + credentialID }

// KeyPair derives the SSH key pair of a credential's bootstrap: an Ed25519
// key whose seed is HMAC-SHA256 of the credential's secret key over its
// access key and id. Kloud passes the public half to the bootstrap template
// (var.kloud_public_key); the private half is never stored or given to
// Terraform: it is derived again when needed, so it is as protected as the
// secret key (encrypted at rest with the credential) and the same public
// key is passed on every re-apply and destroy of the bootstrap. A
// credential whose secret key changes gets a new key pair on its next
// bootstrap; instances already running keep the old public key.
func KeyPair(c *Credential, credentialID string) (ed25519.PrivateKey, error) {
	if c == nil || c.SecretKey == "" {
		return nil, errors.New("derive key pair: the credential has no secret key")
	}
	m := hmac.New(sha256.New, []byte(c.SecretKey.Reveal()))
	m.Write([]byte(keyPairLabel + "|" + c.AccessKey + "|" + credentialID))
	return ed25519.NewKeyFromSeed(m.Sum(nil)), nil
}

// AuthorizedKey formats an Ed25519 public key as an OpenSSH
// authorized_keys line ("ssh-ed25519 AAAA... comment"), the format
// aws_key_pair.public_key takes.
func AuthorizedKey(pub ed25519.PublicKey, comment string) string {
	s := "ssh-ed25519 " + base64.StdEncoding.EncodeToString(publicKeyBlob(pub))
	if comment != "" {
		s += " " + comment
	}
	return s
}

// PrivateKeyPEM encodes key in OpenSSH's own private key format
// ("-----BEGIN OPENSSH PRIVATE KEY-----", unencrypted), which ssh reads
// for Ed25519 keys.
func PrivateKeyPEM(key ed25519.PrivateKey, comment string) []byte {
	pub := key.Public().(ed25519.PublicKey)
	// The private section: two equal check words, the key, the comment,
	// then padding 1, 2, 3, ... to a multiple of the cipher block (8).
	check := binary.BigEndian.Uint32(key.Seed()[:4])
	var priv []byte
	priv = binary.BigEndian.AppendUint32(priv, check)
	priv = binary.BigEndian.AppendUint32(priv, check)
	priv = appendString(priv, []byte("ssh-ed25519"))
	priv = appendString(priv, pub)
	priv = appendString(priv, key)
	priv = appendString(priv, []byte(comment))
	for i := byte(1); len(priv)%8 != 0; i++ {
		priv = append(priv, i)
	}
	out := []byte("openssh-key-v1\x00")
	out = appendString(out, []byte("none"))
	out = appendString(out, []byte("none"))
	out = appendString(out, nil)
	out = binary.BigEndian.AppendUint32(out, 1)
	out = appendString(out, publicKeyBlob(pub))
	out = appendString(out, priv)
	return pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: out})
}

func publicKeyBlob(pub ed25519.PublicKey) []byte {
	return appendString(appendString(nil, []byte("ssh-ed25519")), pub)
}

// appendString appends b as an SSH wire-format string (uint32 length, bytes).
func appendString(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}
