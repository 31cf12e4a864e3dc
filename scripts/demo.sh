#!/usr/bin/env bash
# demo.sh: Kloud end to end on the embedded default (SQLite, sandbox
# provider, no cloud account), as a user would drive it. Run through
# ./build.sh demo, which builds bin/ first.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
KLOUD="$ROOT/bin/kloud"
DATA=$(mktemp -d "${TMPDIR:-/tmp}/kloud-demo.XXXXXX")
LOG="$DATA/server.log"
SERVER_PID=""

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	# Sandbox machines are processes: none may outlive the demo.
	pkill -TERM -f -- "$DATA" 2>/dev/null || true
	[ -n "${KEEP_DEMO:-}" ] || rm -rf "$DATA"
}
trap cleanup EXIT

step "starting kloud serve on $DATA"
"$KLOUD" serve --data-dir "$DATA" --listen 127.0.0.1:0 \
	--rating-period 10s --rating-wait-periods 1 --rating-interval 2s \
	>"$DATA/server.out" 2>"$LOG" &
SERVER_PID=$!
for _ in $(seq 1 100); do
	[ -s "$DATA/server.url" ] && [ -s "$DATA/admin.token" ] && break
	sleep 0.1
done
export KLOUD_URL=$(cat "$DATA/server.url")
export KLOUD_TOKEN=$(cat "$DATA/admin.token")
echo "server at $KLOUD_URL (admin token in $DATA/admin.token)"
for _ in $(seq 1 50); do grep -q 'msg="kloud serving"' "$LOG" && break; sleep 0.1; done
echo "members' Terraform runs and machines: $(sed -n 's/.*msg="kloud serving".* confinement=//p' "$LOG" | head -n1 | tr -d '"')"

# The web dashboard: the sign-in link carries the token in its fragment,
# which the browser never sends to the server.
LINK=$("$KLOUD" session link -o json | sed -n 's/.*"url": *"\([^"]*\)".*/\1/p')
printf '\n\033[1mweb dashboard: %s/\033[0m\nsign in with: %s\n' "$KLOUD_URL" "$LINK"

# pause_for_browser waits for Enter when the demo runs in a terminal, so
# the dashboard can be looked at; without a terminal it goes on at once.
pause_for_browser() {
	[ -t 0 ] || return 0
	printf '\n\033[1m%s\033[0m\n  %s\n  sign in: %s\npress Enter to %s ' "$1" "$2" "$LINK" "$3"
	read -r _ || true
}

k() { echo "\$ kloud $*" >&2; "$KLOUD" "$@"; }

# wait_agents waits (at most 60 s) until every Running machine's agent is
# connected: registered and heartbeating with the server.
wait_agents() {
	local deadline=$((SECONDS + 60)) json running connected
	while :; do
		json=$("$KLOUD" machine list -o json)
		running=$(printf '%s\n' "$json" | grep -c '"state": "Running"' || true)
		connected=$(printf '%s\n' "$json" | grep -c '"status": "connected"' || true)
		if [ "$running" -gt 0 ] && [ "$connected" -ge "$running" ]; then
			echo "all $running running machines have their agent connected"
			return 0
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "agents not connected after 60s ($connected of $running):" >&2
			"$KLOUD" machine list >&2
			return 1
		fi
		sleep 0.5
	done
}
id_of() { sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -n1; }

step "pricing: 0.05 an hour for a small machine, 0.10 for a medium one (CloudKitty's hashmap)"
SVC=$(k rating hashmap services --data '{"name":"instance"}' -o json | sed -n 's/.*"service_id": *"\([^"]*\)".*/\1/p')
FIELD=$(k rating hashmap fields --data "{\"service_id\":\"$SVC\",\"name\":\"size\"}" -o json | sed -n 's/.*"field_id": *"\([^"]*\)".*/\1/p')
k rating hashmap mappings --data "{\"field_id\":\"$FIELD\",\"value\":\"small\",\"type\":\"flat\",\"cost\":\"0.05\"}" >/dev/null
k rating hashmap mappings --data "{\"field_id\":\"$FIELD\",\"value\":\"medium\",\"type\":\"flat\",\"cost\":\"0.10\"}" >/dev/null
k rating modules

step "adding a sandbox credential"
CRED=$(k credential add sandbox --title "local sandbox" -o json | id_of)
k credential verify "$CRED"

step "creating a template from templates/sandbox/main.tf (a small web + db stack)"
TPL=$(k template create templates/sandbox/main.tf --provider sandbox --title "web+db" -o json | id_of)
k template plan "$TPL" --credential "$CRED"

step "creating and applying the stack"
STACK=$(k stack create --title demo --template "$TPL" --credential "$CRED" -o json | id_of)
k stack apply "$STACK" --follow
k stack show "$STACK"

step "stopping and starting a machine"
WEB=$(k machine list -o json | sed -n 's/.*"id": *"\(m-[^"]*\)".*/\1/p' | head -n1)
k machine stop "$WEB" --follow
k machine stop "$WEB" || echo "(refused, as the state table says)"
k machine start "$WEB" --follow

step "machines, their uptime and their agents"
wait_agents
k machine list
k machine info "$WEB"

pause_for_browser "the stack is up: look at it in the dashboard" "$KLOUD_URL/stacks/$STACK" "destroy it and bill the run"

step "destroying the stack"
k stack destroy "$STACK" --follow
k machine list

step "the bill of the stack"
. "$ROOT/scripts/demo-bill.sh"

pause_for_browser "the bill is ready: the dashboard stays up until you go on" "$KLOUD_URL/billing" "stop the server"

step "stopping the server"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=""
if pgrep -f -- "$DATA" >/dev/null; then
	echo "processes left behind:" >&2
	pgrep -af -- "$DATA" >&2
	exit 1
fi
echo "demo done: no process left behind"
