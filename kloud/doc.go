// Package kloud is the service: the HTTP API, what each job does (apply,
// destroy, bootstrap, start, stop) and authentication, wired over the
// store, the providers, the Terraform runner, the job engine (kloud/jobs),
// the machine checker (kloud/checker), the rating bridge (kloud/rater) and
// the machine list cache (kloud/listcache).
package kloud
