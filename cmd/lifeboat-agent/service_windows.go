package main

import (
	"context"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows/svc"

	"github.com/lifeboat-dr/lifeboat/internal/cli"
)

func init() {
	// The service's configuration lives under %ProgramData%\Lifeboat.
	DefaultConfig = filepath.Join(programData(), "Lifeboat", "agent.toml")
}

func programData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}

// runAsWindowsService runs the command line under the service control
// manager when Windows started this process as a service: the SCM's stop
// and shutdown cancel the agent's context, as SIGTERM does on Linux.
func runAsWindowsService() (bool, int) {
	is, err := svc.IsWindowsService()
	if err != nil || !is {
		return false, 0
	}
	h := &serviceHandler{}
	if err := svc.Run("lifeboat-agent", h); err != nil {
		cli.PrintError(os.Stderr, "lifeboat-agent", err)
		return true, 1
	}
	return true, h.code
}

type serviceHandler struct{ code int }

func (h *serviceHandler) Execute(args []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runWith(ctx, os.Args[1:], os.Stdout, os.Stderr) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			if err != nil {
				cli.PrintError(os.Stderr, "lifeboat-agent", err)
				h.code = 1
				return false, 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
			}
		}
	}
}
