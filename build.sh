#!/usr/bin/env bash
# build.sh: build, test, demo and benchmark Kloud. Everything Kloud needs
# (Go modules, Terraform, the sandbox provider plugin, bubblewrap for
# confinement) is installed from here,
# so a fresh machine with Go needs nothing by hand.
#
#   ./build.sh build   binaries into bin/, Terraform into bin/terraform,
#                      the sandbox plugin into the mirror bin/plugins
#   ./build.sh test    build, go vet, then every test
#   ./build.sh demo    build, then run Kloud end to end on a temporary data dir
#   ./build.sh bench   build, then every benchmark
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$(pwd)
BIN="$ROOT/bin"
TERRAFORM_VERSION=1.5.7
SANDBOX_PLUGIN_VERSION=0.1.0
PLUGIN_DIR="$BIN/plugins/kloud.local/kloud/sandbox/$SANDBOX_PLUGIN_VERSION/linux_amd64"

log() { printf '==> %s\n' "$*" >&2; }

# version_ok prints nothing and succeeds when the terraform (or tofu) at $1 is
# at least 1.5.
version_ok() {
	local v
	v=$("$1" version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([0-9.]*\)".*/\1/p' | head -n1)
	[ -n "$v" ] || v=$("$1" version 2>/dev/null | sed -n 's/^[A-Za-z]* v\([0-9.]*\).*/\1/p' | head -n1)
	[ -n "$v" ] || return 1
	local major minor
	major=${v%%.*}
	minor=${v#*.}
	minor=${minor%%.*}
	[ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 5 ]; }
}

# ensure_terraform makes bin/terraform a Terraform >= 1.5: KLOUD_TERRAFORM,
# then terraform or tofu on PATH, then an earlier install, and otherwise
# go install github.com/hashicorp/terraform@v1.5.7.
ensure_terraform() {
	mkdir -p "$BIN"
	local candidate
	for candidate in "${KLOUD_TERRAFORM:-}" "$(command -v terraform || true)" "$(command -v tofu || true)"; do
		[ -n "$candidate" ] && [ -x "$candidate" ] || continue
		[ "$candidate" -ef "$BIN/terraform" ] && break
		if version_ok "$candidate"; then
			ln -sf "$candidate" "$BIN/terraform"
			return
		fi
	done
	if [ -x "$BIN/terraform" ] && version_ok "$BIN/terraform"; then
		return
	fi
	rm -f "$BIN/terraform"
	log "installing terraform $TERRAFORM_VERSION with go install (first run only)"
	GOBIN="$BIN" go install "github.com/hashicorp/terraform@v$TERRAFORM_VERSION"
}

# ensure_bwrap installs bubblewrap, which confines members' Terraform runs
# and sandbox machines, from the distribution's packages when it is missing.
ensure_bwrap() {
	command -v bwrap >/dev/null 2>&1 && return
	if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		log "installing bubblewrap (confinement of Terraform and sandbox machines)"
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
		log "installing bubblewrap with sudo"
		sudo apt-get update -qq >/dev/null
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
	else
		log "bubblewrap (bwrap) is missing: install it, or run kloud serve --unconfined (members can then run code as your user)"
	fi
}

# apt_install installs Debian packages when apt-get is there and we are
# root (or have sudo); it fails otherwise.
apt_install() {
	local sudo=""
	command -v apt-get >/dev/null 2>&1 || return 1
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || return 1
		sudo="sudo"
	fi
	$sudo apt-get update -qq >/dev/null &&
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ensure_chromium installs Debian's chromium for the dashboard's browser
# test when it is missing (never a downloaded browser); without it that
# test skips, saying why.
ensure_chromium() {
	[ -x /usr/bin/chromium ] || [ -n "${KLOUD_CHROMIUM:-}" ] && return
	log "installing chromium (the web dashboard's browser test)"
	apt_install chromium || log "chromium could not be installed: the browser test will be skipped"
}

# build_web builds the web dashboard (web/, TypeScript + Vite) into
# kloud/webui/dist, which the kloud binary embeds. npm ci runs when the
# lock file changed since the last install. Without Node.js the binary is
# built without the dashboard, and / says how to build it.
build_web() {
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		log "node/npm not found: building kloud without the web dashboard (install Node.js 20 to build it)"
		return
	fi
	local stamp="$ROOT/web/node_modules/.kloud-lock" sum
	sum=$(sha256sum "$ROOT/web/package-lock.json" | cut -d' ' -f1)
	if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
		log "npm ci (web dashboard)"
		(cd "$ROOT/web" && npm ci --no-audit --no-fund --loglevel=error)
		echo "$sum" >"$stamp"
	fi
	log "building the web dashboard"
	(cd "$ROOT/web" && npm run --silent build)
}

# kloud_version is Kloud's one version (kloud version, /healthz, the agent's
# reported version): KLOUD_VERSION, else git describe, else 0.1.0-dev.
kloud_version() {
	if [ -n "${KLOUD_VERSION:-}" ]; then
		echo "$KLOUD_VERSION"
		return
	fi
	git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev
}

build() {
	ensure_bwrap
	ensure_terraform
	local version
	version=$(kloud_version)
	build_web
	log "building kloud, klient and terraform-provider-sandbox ($version)"
	mkdir -p "$PLUGIN_DIR"
	local x="-X github.com/kloud/kloud/internal/version.Version=$version"
	go build -ldflags "$x" -o "$BIN/kloud" ./cmd/kloud
	go build -ldflags "$x" -o "$BIN/klient" ./cmd/klient
	# main.version is the plugin's Terraform provider version (its mirror
	# path), not Kloud's; the agent it can run reports Kloud's.
	go build -ldflags "$x -X main.version=$SANDBOX_PLUGIN_VERSION" \
		-o "$PLUGIN_DIR/terraform-provider-sandbox_v$SANDBOX_PLUGIN_VERSION" ./cmd/terraform-provider-sandbox
}

# Tests and benchmarks find the built parts through these variables.
export_env() {
	export KLOUD_TERRAFORM="$BIN/terraform"
	export KLOUD_PLUGIN_DIR="$BIN/plugins"
	export KLOUD_KLIENT="$BIN/klient"
	export KLOUD_BIN="$BIN/kloud"
}

case "${1:-build}" in
build)
	build
	;;
test)
	build
	export_env
	ensure_chromium
	if [ -d "$ROOT/web/node_modules" ]; then
		log "web dashboard unit tests (vitest)"
		(cd "$ROOT/web" && npm test --silent)
	fi
	log "go vet"
	go vet ./...
	log "go test"
	go test -count=1 -timeout 14m ./...
	;;
demo)
	build
	export_env
	exec "$ROOT/scripts/demo.sh"
	;;
bench)
	build
	export_env
	# The figures DESIGN.md's targets track, each printed next to its
	# target (apply vs raw Terraform, quote, list p99, serve RSS, billing
	# a month: the month alone takes minutes), then every other benchmark.
	figures='BenchmarkApplyVsRawTerraform|BenchmarkJobPickup|BenchmarkQuote100k|BenchmarkListMachines10k|BenchmarkServeRSS10k|BenchmarkBilling'
	go test -run '^$' -bench "$figures" -benchtime 3x -timeout 60m ./kloud/
	go test -run '^$' -bench 'BenchmarkBilling' -benchtime 1x -timeout 120m ./ratingbridge/
	go test -run '^$' -bench . -skip "$figures" -benchmem -timeout 30m ./...
	;;
*)
	echo "usage: $0 [build|test|demo|bench]" >&2
	exit 2
	;;
esac
