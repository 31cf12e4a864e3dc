// Command terraform-provider-sandbox is being built; see the issues.
package main

func main() {}
