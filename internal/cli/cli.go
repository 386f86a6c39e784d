package cli

import (
	"fmt"
	"io"

	"github.com/lifeboat-dr/lifeboat/api"
)

// PrintError prints err as every command does: "PROG: ERROR" and, when
// the error chain carries one (api.Hint), "hint: HINT" on its own line.
func PrintError(w io.Writer, prog string, err error) {
	fmt.Fprintf(w, "%s: %v\n", prog, err)
	if h := api.Hint(err); h != "" {
		fmt.Fprintln(w, "hint:", h)
	}
}
