// Package kloud is the service: the HTTP API, jobs and their events, leases,
// authentication, and the machine checker, wired over the store, the
// providers, the Terraform runner and the rating bridge.
package kloud
