// Command klient is being built; see the issues.
package main

func main() {}
