package aws

import "github.com/kloud/kloud/provider"

// AgentScript is the user data Kloud gives every aws_instance
// (provider.CloudAgentScript); the instance metadata service (IMDSv2)
// gives its id and type. When the user's aws_instance sets user_data too,
// composition sends both as a cloud-init MIME multipart archive: this
// script first, then the user's part, typed text/cloud-config when it
// starts with #cloud-config and text/x-shellscript otherwise (cloud-init
// runs the scripts in order).
func AgentScript() string {
	return provider.CloudAgentScript(provider.AgentScriptOptions{
		Preamble: `imds() {
  t=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) &&
    curl -fsS -H "X-aws-ec2-metadata-token: $t" "http://169.254.169.254/latest/meta-data/$1"
}`,
		MachineID: "$(imds instance-id)",
		Size:      "$(imds instance-type)",
	})
}
