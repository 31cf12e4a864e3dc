// Package klient is the agent that runs on every machine: it serves its
// health and info, runs the machine's user data once, and registers and
// heartbeats with Kloud.
//
// On a sandbox machine the agent is the machine's CPU and its directory is
// the disk. It listens (default 127.0.0.1:0) and writes the address it got
// to <dir>/address; serves GET /healthz and GET /v1/info; runs
// <dir>/user_data.sh with sh once per machine (output in user_data.log, a
// user_data.done marker keeps a restart from running it again); and, given
// a Kloud URL, POSTs /api/v1/agent/register until it succeeds, then
// /api/v1/agent/heartbeat every interval, backing off on failure. The
// body of both is agentapi.Report, the type the server decodes too; when
// Kloud's answer (agentapi.Ack) names a heartbeat interval, that interval
// replaces -heartbeat. SIGTERM or
// SIGINT stops it cleanly; when it leads its own session (sandboxvm starts
// it with setsid) it takes every process left in that session with it.
//
// Given a Kloud URL it also keeps a tunnel to Kloud open (a WebSocket at
// agentapi.ConnectPath, multiplexed with yamux, reconnecting with backoff
// and jitter) on which Kloud opens terminal streams: each a PTY running a
// login shell (or a command) in the machine's home, with an environment
// free of KLIENT_*, KLOUD_* and the token; named sessions outlive a dropped
// stream for five minutes and replay their recent output. Heartbeats
// report the last terminal input, the attached sessions and, with
// -busy-cpu (KLIENT_BUSY_CPU), whether the visible processes worked.
//
// Settings come from flags, else the environment: -dir (KLIENT_DIR),
// -machine-id (KLIENT_MACHINE_ID), -size (KLIENT_SIZE), -listen
// (KLIENT_LISTEN), -kloud-url (KLIENT_KLOUD_URL), -heartbeat
// (KLIENT_HEARTBEAT_INTERVAL). The token comes only from KLIENT_TOKEN or a
// 0600 file (<dir>/agent.token, or -token-file), never from the command
// line.
package klient
