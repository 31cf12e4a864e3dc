# A small web + database stack on DigitalOcean: droplets in the
# credential's region and bootstrap VPC, reachable with the credential's
# bootstrap SSH key. Kloud adds the agent's start-up to each droplet's user
# data, its key to ssh_keys and its tags; var.kloud_image is Kloud's
# default image (the provider requires an image on every droplet).

variable "web_count" {
  description = "How many web droplets to run."
  type        = number
  default     = 1
}

variable "web_size" {
  description = "The size slug of the web droplets."
  type        = string
  default     = "s-1vcpu-1gb"
}

# The web droplets install and start nginx on first boot; cloud-init runs
# this after Kloud's agent start-up.
resource "digitalocean_droplet" "web" {
  count  = var.web_count
  name   = "web-${count.index}"
  size   = var.web_size
  image  = var.kloud_image
  tags   = ["web"]

  user_data = <<-EOT
    #cloud-config
    packages:
      - nginx
    write_files:
      - path: /var/www/html/index.html
        content: |
          <!doctype html>
          <title>web ${count.index}</title>
          <h1>Hello from web ${count.index}</h1>
    runcmd:
      - systemctl enable --now nginx
  EOT
}

# The database droplet: a larger size, a pinned image, monitoring on.
resource "digitalocean_droplet" "db" {
  name       = "db"
  size       = "s-2vcpu-4gb"
  image      = "ubuntu-24-04-x64"
  monitoring = true

  user_data = <<-EOT
    #!/bin/sh
    set -e
    apt-get update
    apt-get install -y postgresql
  EOT
}
