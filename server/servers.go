package server

import (
	"context"
	"net"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// The scale-out coordination is the configuration role's
// (configsrv.Servers); a joined process server's membership is the
// process role's (process.Membership). This file joins them to this
// server's own process role.

// localID is the id of this server's own process role.
func (s *Server) localID() string { return s.cfg.Name }

// hasLocalProcess reports whether machines can be assigned to this
// configuration server itself.
func (s *Server) hasLocalProcess() bool { return s.cfg.Roles.Process || s.cfg.Advertise != "" }

// localProcessAddr is the address of the local process role as agents
// reach it ("" for r's host when unknown).
func (s *Server) localProcessAddr(reqHost string) string {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise
	}
	if s.procAddr == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(s.procAddr.String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if reqHost != "" {
			if h, _, err := net.SplitHostPort(reqHost); err == nil {
				host = h
			} else {
				host = reqHost
			}
		}
	}
	return net.JoinHostPort(host, port)
}

// processServerFor returns the process server address to give an agent
// that registered through r.
func (s *Server) processServerFor(r *http.Request) (string, error) {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise, nil
	}
	if s.procAddr == nil {
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "this server runs no process role",
			"run lifeboat-server with --roles including process, or give --advertise HOST:PORT of a process server")
	}
	host, port, err := net.SplitHostPort(s.procAddr.String())
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		// Listening on every address: the agent can reach the process
		// role where it reached this one.
		h, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			h = r.Host
		}
		host = h
	}
	return net.JoinHostPort(host, port), nil
}

// localProc gives the scale-out coordination (configsrv.Servers) this
// server's own process role.
type localProc struct{ s *Server }

func (l localProc) Addr(reqHost string) string { return l.s.localProcessAddr(reqHost) }

func (l localProc) RegisterAddr(r *http.Request) (string, error) { return l.s.processServerFor(r) }

func (l localProc) Drain(ctx context.Context, m string) ([]api.DiskState, error) {
	return l.s.proc.Drain(ctx, m)
}

func (l localProc) Release(m string) { l.s.releaseMachine(m) }

// releaseMachine forgets the disks of a machine and stops their appliers.
func (s *Server) releaseMachine(m string) { s.proc.Release(m) }

// drainLocal stops this process role's acceptance of a machine (the
// caller marked it), waits until every segment it acknowledged is
// applied, then forgets the machine's disks.
func (s *Server) drainLocal(ctx context.Context, m string) ([]api.DiskState, error) {
	return s.proc.Drain(ctx, m)
}

// servesHere reports whether this server's process role may serve a
// machine now: the configuration server for a machine assigned to it (and
// not being moved), a joined server for one its last heartbeat answer
// assigned to it (and not drained since).
func (s *Server) servesHere(machine string) bool {
	return s.checkAssigned(machine) == nil
}

// checkAssigned refuses a machine this process server must not serve,
// naming the one that serves it.
func (s *Server) checkAssigned(machine string) error {
	if s.joined() {
		return s.checkJoinedAssigned(machine)
	}
	return s.servers.CheckLocal(machine)
}
