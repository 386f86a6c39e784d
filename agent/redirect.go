package agent

import (
	"context"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Scale-out: the configuration server assigns each machine to one process
// server and may move it (lifeboat move). The agent learns its process
// server from the answer to the poll it already makes every 2 s for its
// replication group (PUT /v1/agent/group), and when it changes calls
// Config.Redirect: the uploaders' next requests go to the new server,
// which resumes each disk from the first unacknowledged segment (the old
// server applied every segment it acknowledged before the move). The agent
// then declares its disk set to the new server too, so that it checks
// every segment's header against it as the old one did.

// followProcessServer switches to addr when it is another process server
// than the current one.
func (a *Agent) followProcessServer(addr string) {
	if addr == "" || a.cfg.Redirect == nil {
		return
	}
	a.mu.Lock()
	cur := a.serverAddr
	a.mu.Unlock()
	if addr == cur {
		return
	}
	if err := a.cfg.Redirect(addr); err != nil {
		a.log.Error("switch to the process server the configuration server names", "from", cur, "to", addr, "err", err)
		return
	}
	a.mu.Lock()
	a.serverAddr = addr
	a.mu.Unlock()
	a.log.Warn("the configuration server moved this machine: replicating to another process server", "from", cur, "to", addr)
	for _, d := range a.disks {
		d.up.Kick()
	}
	go a.declareDisks(addr)
}

// declareDisks declares the disk set to the process server addr, retrying
// for a few minutes while it is still the agent's server.
func (a *Agent) declareDisks(addr string) {
	decl := make([]api.DiskSpec, 0, len(a.disks))
	for _, d := range a.disks {
		decl = append(decl, api.DiskSpec{Name: d.name, Size: d.size})
	}
	for range 60 {
		if a.processServer() != addr {
			return // moved again: that move declares
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := a.cfg.Client.SetMachine(ctx, decl)
		cancel()
		if err == nil {
			return
		}
		a.log.Warn("declare disks to the new process server", "server", addr, "err", err)
		time.Sleep(2 * time.Second)
	}
}

// pollProcessServer asks the configuration server for the machine's
// process server every interval when group points are off (with them on,
// syncGroup's poll does it).
func (a *Agent) pollProcessServer(ctx context.Context, srv GroupServer, every time.Duration) {
	for ctx.Err() == nil {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		asg, err := srv.SyncGroup(sctx, "")
		cancel()
		if err == nil {
			a.followProcessServer(asg.ProcessServer)
			a.serverBookmark(ctx, srv, asg.Bookmark)
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

// processServer returns the process server the agent replicates to.
func (a *Agent) processServer() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.serverAddr
}
