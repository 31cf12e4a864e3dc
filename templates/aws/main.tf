# A small web + database stack on AWS. Kloud fills in what this template
# leaves out from the credential's bootstrap: the AMI (Ubuntu 24.04 LTS),
# the subnet and security group of the credential's VPC and its key pair.
# Kloud also adds its agent to every instance's user data (merged with the
# user data below) and its tags to every instance's tags.

variable "web_count" {
  description = "How many web servers to run."
  type        = number
  default     = 1
}

variable "web_instance_type" {
  description = "The instance type of the web servers."
  type        = string
  default     = "t3.micro"
}

# The web servers: a shell script installs nginx on first boot and writes
# a page naming the server.
resource "aws_instance" "web" {
  count         = var.web_count
  instance_type = var.web_instance_type

  user_data = <<-EOT
    #!/bin/sh
    set -e
    apt-get update -q
    apt-get install -y -q nginx
    echo "<h1>Hello from web ${count.index}</h1>" > /var/www/html/index.html
    systemctl enable --now nginx
  EOT

  tags = {
    Name = "web-${count.index}"
    role = "web"
  }
}

# The database: cloud-config installs PostgreSQL on a larger disk.
resource "aws_instance" "db" {
  instance_type = "t3.small"

  root_block_device {
    volume_size = 20
    volume_type = "gp3"
  }

  user_data = <<-EOT
    #cloud-config
    package_update: true
    packages:
      - postgresql
    runcmd:
      - systemctl enable --now postgresql
  EOT

  tags = {
    Name = "db"
    role = "db"
  }
}

output "web_public_ips" {
  value = aws_instance.web[*].public_ip
}

output "db_private_ip" {
  value = aws_instance.db.private_ip
}
