package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// watchStatus asks the agent every interval until ctx ends (SIGINT). On a
// terminal it redraws the screen; otherwise it appends a line each time the
// summary changes (with --json: the whole status, one object a line). It
// returns the exit code of the last status seen.
func watchStatus(ctx context.Context, get func(context.Context) (api.AgentStatus, error), out output, asJSON bool, interval time.Duration, stderr io.Writer) (int, error) {
	last := ""
	code := exitNoAgent
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		st, err := get(ctx)
		if ctx.Err() != nil {
			return code, nil
		}
		var na *errNoAgent
		switch {
		case errors.As(err, &na):
			st, code = noAgentStatus(na, time.Now()), exitNoAgent
		case err != nil:
			st, code = api.AgentStatus{Time: time.Now(), Problems: []api.AgentProblem{{Code: "ask-failed", What: err.Error(), Remedy: "see the agent's log"}}}, exitAskFailed
		default:
			code = exitCode(st)
		}
		switch {
		case out.view.tty && !asJSON:
			var b bytes.Buffer
			b.WriteString("\x1b[H\x1b[2J") // home, clear screen
			fmt.Fprintf(&b, "agentctl status --watch, every %s (Ctrl-C to stop)   %s\n\n", interval, st.Time.Format(time.TimeOnly))
			if code == exitNoAgent || code == exitAskFailed {
				fmt.Fprintf(&b, "%s\n  remedy: %s\n", st.Problems[0].What, st.Problems[0].Remedy)
			} else {
				renderStatus(&b, st, out.view)
			}
			out.w.Write(b.Bytes())
		default:
			line := summaryLine(st)
			if code == exitNoAgent || code == exitAskFailed {
				line = st.Problems[0].Code + ": " + st.Problems[0].What + "; remedy: " + st.Problems[0].Remedy
			}
			if line != last {
				last = line
				if asJSON {
					b, _ := json.Marshal(st)
					fmt.Fprintf(out.w, "%s\n", b)
				} else {
					fmt.Fprintf(out.w, "%s %s\n", st.Time.UTC().Format(time.RFC3339), line)
				}
			}
		}
		select {
		case <-ctx.Done():
			return code, nil
		case <-tick.C:
		}
	}
}
