package stack

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// A stack's agent secret and what Kloud keeps of an agent token. The token
// of each machine is derived from the secret and the machine's Terraform
// address by the Terraform engine (terraform.AgentToken), which injects the
// same computation into every machine block.

// NewAgentSecret returns a fresh random stack agent secret (256 bits, hex).
func NewAgentSecret() (Secret, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate agent secret: %w", err)
	}
	return Secret(hex.EncodeToString(b[:])), nil
}

// HashAgentToken returns what Kloud stores of an agent token (hex sha256), so
// a stolen database holds no usable token.
func HashAgentToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
