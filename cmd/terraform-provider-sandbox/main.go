// Command terraform-provider-sandbox is the Terraform provider plugin for
// Kloud's sandbox machines (source kloud.local/kloud/sandbox, resource
// sandbox_machine): a thin client of the sandbox control API Kloud serves
// (provider arguments endpoint and token), as a cloud's plugin is of its
// cloud's API. The same binary is also an agent: run as
// `terraform-provider-sandbox agent [klient flags]` it is klient.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/kloud/kloud/klient"
)

// version is set with -ldflags "-X main.version=..." by build.sh.
var version = "dev"

// Address is the provider's source address.
const Address = "kloud.local/kloud/sandbox"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "agent":
			os.Exit(klient.Main(os.Args[2:]))
		case "version":
			fmt.Println(version)
			return
		}
	}
	debug := flag.Bool("debug", false, "run with support for debuggers such as delve")
	flag.Parse()
	err := providerserver.Serve(context.Background(), New(version), providerserver.ServeOpts{
		Address: Address,
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
