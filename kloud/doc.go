// Package kloud is the service: the HTTP API, jobs and their events, leases
// and authentication, wired over the store, the providers, the Terraform
// runner, the machine checker (kloud/checker), the rating bridge
// (kloud/rater) and the machine list cache (kloud/listcache).
package kloud
