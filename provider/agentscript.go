package provider

import (
	"strings"

	"github.com/kloud/kloud/stack/terraform"
)

// KlientPath is where, under Kloud's URL, a cloud machine downloads the
// agent (with ?os=linux&arch=amd64|arm64).
const KlientPath = "/api/v1/agent/klient"

// KlientURLVar is the Terraform variable holding that download URL.
const KlientURLVar = "kloud_klient_url"

// KlientURLVariable declares KlientURLVar for a stack composed with
// CloudAgentScript.
func (bs *BaseStack) KlientURLVariable() terraform.Variable {
	return terraform.Variable{Name: KlientURLVar, Description: "where machines download klient", Value: strings.TrimSuffix(bs.KloudURL, "/") + KlientPath}
}

// AgentScriptOptions say how a cloud machine learns who it is, for
// CloudAgentScript.
type AgentScriptOptions struct {
	// Preamble is shell run first, defining what MachineID and Size use
	// (a function reading the instance metadata service, say).
	Preamble string
	// MachineID and Size are shell words giving the machine's id and size
	// (e.g. "$(imds instance-id)"); an empty Size is left out.
	MachineID, Size string
}

// CloudAgentScript is the user data Kloud gives every cloud machine: at
// first boot it writes klient's settings (Kloud's URL and the machine's
// agent token, 0600), installs klient (kept when the image already has
// /usr/local/bin/klient, else downloaded from Kloud) and runs it as a
// systemd service that registers with Kloud and heartbeats.
//
// It is a Terraform template: ${var.kloud_url} is Kloud's URL and
// ${kloud_agent_token} is replaced by composition with the expression that
// derives the machine's token from the sensitive agent secret, so the token
// is computed by Terraform and never written by Kloud into a file. The
// quoted here-documents keep the shell from expanding anything Terraform
// put in; the download URL is read back from a file, never evaluated.
// Shell expansions are written without braces ($x), since ${ is
// Terraform's.
func CloudAgentScript(o AgentScriptOptions) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# Kloud agent (klient) set-up, added by Kloud to this machine's user data.
set -eu
umask 077
`)
	if o.Preamble != "" {
		b.WriteString(strings.TrimSuffix(o.Preamble, "\n") + "\n")
	}
	b.WriteString(`mkdir -p /etc/klient /var/lib/klient
cat > /etc/klient/klient.env <<'KLOUD_EOF'
KLIENT_KLOUD_URL=${var.kloud_url}
KLIENT_TOKEN=${kloud_agent_token}
KLIENT_DIR=/var/lib/klient
KLOUD_EOF
cat > /etc/klient/download.url <<'KLOUD_EOF'
${var.` + KlientURLVar + `}
KLOUD_EOF
echo "KLIENT_MACHINE_ID=` + o.MachineID + `" >> /etc/klient/klient.env
`)
	if o.Size != "" {
		b.WriteString(`echo "KLIENT_SIZE=` + o.Size + `" >> /etc/klient/klient.env
`)
	}
	b.WriteString(`if [ ! -x /usr/local/bin/klient ]; then
  case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "klient: unsupported machine $(uname -m)" >&2; exit 1 ;;
  esac
  url=$(head -n 1 /etc/klient/download.url)
  curl -fsSL --retry 10 --retry-connrefused --retry-delay 3 -o /usr/local/bin/klient.download "$url?os=linux&arch=$arch"
  chmod 0755 /usr/local/bin/klient.download
  mv /usr/local/bin/klient.download /usr/local/bin/klient
fi
cat > /etc/systemd/system/klient.service <<'KLOUD_EOF'
[Unit]
Description=Kloud agent (klient)
Wants=network-online.target
After=network-online.target

[Service]
EnvironmentFile=/etc/klient/klient.env
ExecStart=/usr/local/bin/klient
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
KLOUD_EOF
chmod 0644 /etc/systemd/system/klient.service
systemctl daemon-reload
systemctl enable --now klient.service
`)
	return b.String()
}
