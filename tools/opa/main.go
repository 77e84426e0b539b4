// Command opa is OPA's own command line, built from its Go module at the version
// pinned in go.mod, so every machine runs the same policy engine and nothing is
// downloaded from a website.
package main

import (
	"errors"
	"os"

	"github.com/open-policy-agent/opa/cmd"
)

func main() {
	if err := cmd.RootCommand.Execute(); err != nil {
		code := 1
		if e, ok := errors.AsType[*cmd.ExitError](err); ok {
			code = e.Exit
		}
		os.Exit(code)
	}
}
