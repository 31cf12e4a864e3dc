package aws

// AgentScript is the user data Kloud gives every aws_instance: on the first
// boot it installs the agent (klient) as a systemd service with the
// machine's Kloud URL and agent token, and starts it. It is a Terraform
// template: ${var.kloud_url} is Kloud's URL and ${kloud_agent_token} is
// replaced by composition with the expression that derives the machine's
// token from the sensitive variable kloud_agent_secret, so the token is
// computed by Terraform and never written by Kloud into a file. Shell
// expansions are written without braces ($x), since ${ is Terraform's.
//
// When the user's aws_instance sets user_data too, composition sends both
// as a cloud-init MIME multipart archive: this script first, then the
// user's part, typed text/cloud-config when it starts with #cloud-config
// and text/x-shellscript otherwise (cloud-init runs the scripts in order).
//
// The script takes the agent from /usr/local/bin/klient when the image
// carries one, else downloads it from Kloud
// (${var.kloud_url}/api/v1/agent/klient?os=linux&arch=<amd64|arm64>).
// The machine's id and size come from the instance metadata service
// (IMDSv2).
const AgentScript = `#!/bin/sh
# Kloud agent (klient) set-up, added by Kloud to this instance's user data.
set -eu
umask 077
imds() {
  t=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) &&
    curl -fsS -H "X-aws-ec2-metadata-token: $t" "http://169.254.169.254/latest/meta-data/$1"
}
mkdir -p /var/lib/klient /etc/klient
cat > /etc/klient/klient.env <<'KLOUD_ENV'
KLIENT_KLOUD_URL=${var.kloud_url}
KLIENT_TOKEN=${kloud_agent_token}
KLIENT_DIR=/var/lib/klient
KLOUD_ENV
echo "KLIENT_MACHINE_ID=$(imds instance-id)" >> /etc/klient/klient.env
echo "KLIENT_SIZE=$(imds instance-type)" >> /etc/klient/klient.env
if [ ! -x /usr/local/bin/klient ]; then
  case "$(uname -m)" in aarch64 | arm64) arch=arm64 ;; *) arch=amd64 ;; esac
  curl -fsSL --retry 10 --retry-connrefused -o /usr/local/bin/klient.download "${var.kloud_url}/api/v1/agent/klient?os=linux&arch=$arch"
  chmod 0755 /usr/local/bin/klient.download
  mv /usr/local/bin/klient.download /usr/local/bin/klient
fi
cat > /etc/systemd/system/klient.service <<'KLOUD_UNIT'
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
KLOUD_UNIT
systemctl daemon-reload
systemctl enable --now klient.service
`
