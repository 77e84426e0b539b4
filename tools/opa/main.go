// Command opa is OPA's own command line, built from its Go module at the version
// pinned in go.mod, so every machine runs the same policy engine and nothing is
// downloaded from a website. It carries one plugin of DataVisa's, datavisa_gateway
// (./gateway), which a sidecar enables in its configuration to answer gateways itself.
package main

import (
	"errors"
	"os"

	"github.com/open-policy-agent/opa/cmd"
	"github.com/open-policy-agent/opa/v1/runtime"

	"datavisa.local/tools/opa/gateway"
)

func main() {
	runtime.RegisterPlugin(gateway.Name, gateway.Factory{})
	if err := cmd.RootCommand.Execute(); err != nil {
		code := 1
		if e, ok := errors.AsType[*cmd.ExitError](err); ok {
			code = e.Exit
		}
		os.Exit(code)
	}
}
