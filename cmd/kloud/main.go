// Command kloud is being built; see the issues.
package main

func main() {}
