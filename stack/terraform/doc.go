// Package terraform is Kloud's Terraform engine: it parses a template and
// checks it against Kloud's policy, composes it with the files Kloud
// generates (provider block, variables, injected attributes, agent tokens),
// and runs Terraform on the result through terraform-exec, keeping the state
// in a store. The domain types it works on live in package stack.
package terraform
