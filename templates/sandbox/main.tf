# A small web + database stack on the sandbox provider: each machine is a
# directory on Kloud's host with its own agent process.

variable "web_count" {
  description = "How many web machines to run."
  type        = number
  default     = 1
}

# The web machines run their user data once, on first boot, from their
# own directory: here it writes the page they would serve.
resource "sandbox_machine" "web" {
  count = var.web_count
  name  = "web-${count.index}"
  size  = "small"

  user_data = <<-EOT
    #!/bin/sh
    set -e
    mkdir -p www
    cat > www/index.html <<HTML
    <!doctype html>
    <title>web ${count.index}</title>
    <h1>Hello from web ${count.index}</h1>
    HTML
  EOT
}

# The database is never stopped by the idle checker.
resource "sandbox_machine" "db" {
  name      = "db"
  size      = "medium"
  always_on = true
}
