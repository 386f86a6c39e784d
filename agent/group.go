package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/agent/group"
	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// Group points (docs/ARCHITECTURE.md §4): the machines of a replication
// group cut together. The protocol, the coordinator's walk through the
// phases and a member's are package group; this file keeps the agent's
// side: the listener and its sessions, the sync of the group assignment
// with the configuration server, when a group point is due, and
// groupLocal, this machine's part of a point (the freezing phases of
// app.go and the round that validates them).

// GroupServer is the configuration server as group points use it;
// *client.AgentConfig implements it.
type GroupServer interface {
	// SyncGroup reports where this agent listens and returns its group.
	SyncGroup(ctx context.Context, addr string) (api.GroupAssignment, error)
	// GroupResult reports the outcome of a group point (coordinator).
	GroupResult(ctx context.Context, r api.GroupPointResult) error
}

// GroupConfig configures group points. A zero Listen disables them.
type GroupConfig struct {
	// Listen is the address of the group listener (default port 20004).
	Listen string
	// Server is the configuration server.
	Server GroupServer
	// Cert is the machine's certificate; CA the PEM of the CA that
	// issued every member's.
	Cert tls.Certificate
	CA   []byte
	// PhaseTimeout bounds each phase but prepare (default 10 s).
	PhaseTimeout time.Duration
	// PrepareTimeout bounds prepare, which runs scripts (default
	// PhaseTimeout plus the script timeout).
	PrepareTimeout time.Duration
	// FrozenMax is the hard limit of a member's freeze: past it the
	// member thaws on its own whatever the coordinator does (default
	// 2 × PhaseTimeout).
	FrozenMax time.Duration
	// SyncInterval is how often the agent asks the server for its group
	// (default 2 s).
	SyncInterval time.Duration
}

// groupState is the agent's group bookkeeping, guarded by Agent.mu but
// for the fields only the loop uses.
type groupState struct {
	cfg    GroupConfig
	listen string // bound address
	// listenErr: the listener could not be bound.
	listenErr string
	asg       api.GroupAssignment
	synced    bool
	last      Point
	err       string

	sessions chan *group.Conn   // accepted, first message read
	reqs     chan *pointRequest // agentctl bookmark --group
	// loop only:
	due      time.Time
	waiting  []*pointRequest
	lastReq  string // the operator request last handled
	interval time.Duration
}

func (g *GroupConfig) defaults(scriptTimeout time.Duration) {
	if g.PhaseTimeout <= 0 {
		g.PhaseTimeout = 10 * time.Second
	}
	if g.PrepareTimeout <= 0 {
		g.PrepareTimeout = g.PhaseTimeout + scriptTimeout
	}
	if g.FrozenMax <= 0 {
		g.FrozenMax = 2 * g.PhaseTimeout
	}
	if g.SyncInterval <= 0 {
		g.SyncInterval = 2 * time.Second
	}
}

func (a *Agent) groupPool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(a.group.cfg.CA) {
		return nil, errors.New("group points: no CA certificate")
	}
	return pool, nil
}

// startGroup binds the group listener and starts the sync with the
// server; the loop runs the sessions.
func (a *Agent) startGroup(ctx context.Context) error {
	g := a.group
	pool, err := a.groupPool()
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", g.cfg.Listen, group.ListenConfig(a.groupCertificate, pool))
	if err != nil {
		// Only a machine in a group needs the listener: the error is a
		// problem of its status then (groupProblem), not before.
		a.mu.Lock()
		g.listenErr = fmt.Sprintf("group listener on %s: %v", g.cfg.Listen, err)
		a.mu.Unlock()
		a.log.Warn("group listener unavailable", "err", err)
		go a.syncGroup(ctx)
		return nil
	}
	a.mu.Lock()
	g.listen = ln.Addr().String()
	a.mu.Unlock()
	a.log.Info("group listener", "addr", ln.Addr().String())
	go func() { <-ctx.Done(); ln.Close() }()
	go a.acceptGroup(ctx, ln)
	go a.syncGroup(ctx)
	return nil
}

// syncGroupOnce asks the server for the group once.
func (a *Agent) syncGroupOnce(ctx context.Context) {
	g := a.group
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	asg, err := g.cfg.Server.SyncGroup(sctx, g.listen)
	cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		if g.synced {
			a.log.Warn("group: ask the configuration server", "err", err)
		}
		return
	}
	g.asg, g.synced = asg, true
	go a.followProcessServer(asg.ProcessServer)
}

// syncGroup keeps the group assignment fresh.
func (a *Agent) syncGroup(ctx context.Context) {
	g := a.group
	for ctx.Err() == nil {
		a.syncGroupOnce(ctx)
		a.serverBookmark(ctx, g.cfg.Server, a.assignment().Bookmark)
		select {
		case <-ctx.Done():
		case <-time.After(g.cfg.SyncInterval):
		}
	}
}

func (a *Agent) assignment() api.GroupAssignment {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.group.asg
}

// acceptGroup accepts the coordinator's connections and hands each to the
// loop once its first message (prepare) is read.
func (a *Agent) acceptGroup(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("group listener stopped", "err", err)
			}
			return
		}
		go a.handleGroupConn(ctx, c.(*tls.Conn))
	}
}

func (a *Agent) handleGroupConn(ctx context.Context, c *tls.Conn) {
	g := a.group
	deadline := time.Now().Add(g.cfg.PhaseTimeout)
	hctx, cancel := context.WithDeadline(ctx, deadline)
	err := c.HandshakeContext(hctx)
	cancel()
	if err != nil {
		a.log.Warn("group: handshake", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	peer := c.ConnectionState().PeerCertificates[0].Subject.CommonName
	gc := group.NewConn(c, peer)
	m, err := gc.Recv(deadline)
	if err != nil {
		a.log.Warn("group: first message", "err", err)
		c.Close()
		return
	}
	asg := a.assignment()
	if m.Group != asg.Group || peer != asg.Coordinator {
		// The group may have changed since the last sync: ask now.
		sctx, cancel := context.WithDeadline(ctx, deadline)
		a.syncGroupOnce(sctx)
		cancel()
		asg = a.assignment()
	}
	switch {
	case m.Op != api.GroupOpPrepare:
		err = fmt.Errorf("expected %s, got %q", api.GroupOpPrepare, m.Op)
	case asg.Group == "" || m.Group != asg.Group:
		err = fmt.Errorf("machine %s is not in group %q (its group: %q)", a.cfg.Machine, m.Group, asg.Group)
	case peer != asg.Coordinator:
		err = fmt.Errorf("%s does not coordinate group %s (%s does)", peer, asg.Group, asg.Coordinator)
	case m.ID == "" || len(m.ID) > 64:
		err = errors.New("bad point id")
	}
	if err != nil {
		a.log.Warn("group: refused a session", "peer", peer, "err", err)
		gc.Reply(api.GroupOpPrepare, err, deadline)
		c.Close()
		return
	}
	gc.First = m
	select {
	case g.sessions <- gc:
	case <-time.After(g.cfg.PhaseTimeout):
		gc.Reply(api.GroupOpPrepare, errors.New("busy: the agent's loop did not take the session in time"), time.Now().Add(time.Second))
		c.Close()
	case <-ctx.Done():
		c.Close()
	}
}

func (a *Agent) setGroupResult(p *Point, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.group.err = err.Error()
		a.log.Warn("group point failed", "err", err)
		return
	}
	a.group.last, a.group.err = *p, ""
}

// groupLocal is this machine's part of a group point (group.Local): the
// freezing phases of app.go and the round that validates them.
type groupLocal struct {
	a   *Agent
	att *appAttempt
	ph  *phases
	// member: check, before preparing, that this machine can take part
	// (the coordinator checks before it connects).
	member bool
	// roundErr is a replication round's error met on the way: the
	// loop's error, not only the point's.
	roundErr error
}

func (a *Agent) newGroupLocal(att *appAttempt, member bool) *groupLocal {
	return &groupLocal{a: a, att: att, ph: a.newPhases(att), member: member}
}

// keep notes the round's error inside err, if any, and returns err.
func (l *groupLocal) keep(err error) error {
	var re *errRound
	if errors.As(err, &re) {
		l.roundErr = re.err
	}
	return err
}

func (l *groupLocal) Prepare(ctx context.Context) error {
	a := l.a
	if l.member {
		if a.app != nil {
			// An app point waits for its validating round: run it first.
			if _, err := a.round(ctx, 0, time.Time{}); err != nil {
				l.roundErr = err
				return err
			}
		}
		if !a.allProtected() {
			return errors.New("a disk is still in initial sync or resync")
		}
	}
	return l.keep(l.ph.prepare(ctx))
}

func (l *groupLocal) Freeze() error                  { return l.ph.freeze() }
func (l *groupLocal) Cut(ctx context.Context) error  { return l.keep(l.ph.cut(ctx)) }
func (l *groupLocal) Thaw(ctx context.Context) error { return l.ph.abort(ctx) }

func (l *groupLocal) Validate(ctx context.Context, decide func(valid bool) bool, written func(p Point, err error)) error {
	l.att.decide, l.att.done = decide, written
	l.a.app = l.att
	if _, err := l.a.round(ctx, 0, time.Time{}); err != nil {
		l.a.app = nil
		l.roundErr = err
		return err
	}
	return nil
}

// member runs this machine's side of a group point that the coordinator
// opened with gc; it returns only a round's error.
func (a *Agent) member(ctx context.Context, gc *group.Conn) error {
	defer gc.Close()
	g := a.group
	id := gc.First.ID
	log := a.log.With("group", gc.First.Group, "point", id, "coordinator", gc.Peer)
	att := &appAttempt{id: id, kind: hrlfmt.CutGroup}
	att.note.Group = gc.First.Group
	l := a.newGroupLocal(att, true)
	if err := group.Member(ctx, gc, l, group.MemberTimeouts{Phase: g.cfg.PhaseTimeout, FrozenMax: g.cfg.FrozenMax}, log); err != nil {
		a.setGroupResult(nil, err)
		return l.roundErr
	}
	p := a.lastPoint
	a.setGroupResult(&p, nil)
	log.Info("group point", "freeze", att.freeze)
	return nil
}

// writeGroupPoint journals this machine's part of a committed group
// point.
func (a *Agent) writeGroupPoint(att *appAttempt) (Point, error) {
	note := hrlfmt.Note{PointID: att.id, Freeze: att.freeze, Text: noteText(att.note)}
	p, err := a.writeCut(att.id, hrlfmt.CutGroup, att.gen-1, att.at, &note)
	if err != nil {
		return Point{}, err
	}
	a.mu.Lock()
	a.lastPoint = p
	a.freezes.add(att.freeze)
	a.counts.observe(func(h *histograms) { h.freeze.WithLabelValues("group").Observe(att.freeze.Seconds()) })
	a.mu.Unlock()
	a.pointDue = time.Now().Add(a.cfg.PointInterval)
	return p, a.save()
}

// coordinate runs a group point across the group's members and reports
// its outcome to the server.
func (a *Agent) coordinate(ctx context.Context, asg api.GroupAssignment, request string) (Point, error) {
	g := a.group
	id := newPointID()
	res := api.GroupPointResult{Group: asg.Group, ID: id, Request: request, Time: time.Now().UTC(), Failed: []string{}}
	log := a.log.With("group", asg.Group, "point", id)
	p, err := a.runGroupPoint(ctx, asg, id)
	if err != nil {
		var pe *group.PhaseError
		errors.As(err, &pe)
		res.Phase, res.Error = pe.Phase, pe.Err.Error()
		if pe.Members != nil {
			res.Failed = pe.Members
		}
		err = fmt.Errorf("group point %s %w", id, err)
		a.setGroupResult(nil, err)
	} else {
		res.OK = true
		res.FreezeSeconds = p.FreezeSeconds
		a.setGroupResult(&p, nil)
		log.Info("group point", "machines", asg.Machines, "freeze", p.FreezeSeconds)
	}
	rctx, cancel := context.WithTimeout(ctx, g.cfg.PhaseTimeout)
	if rerr := g.cfg.Server.GroupResult(rctx, res); rerr != nil {
		a.log.Warn("group: report the outcome to the configuration server", "err", rerr)
	}
	cancel()
	return p, err
}

// runGroupPoint checks that this machine can coordinate a group point and
// runs it (group.Coordinate); its error is a *group.PhaseError.
func (a *Agent) runGroupPoint(ctx context.Context, asg api.GroupAssignment, id string) (Point, error) {
	g := a.group
	self := a.cfg.Machine
	if a.app != nil {
		if _, err := a.round(ctx, 0, time.Time{}); err != nil {
			return Point{}, &group.PhaseError{Phase: api.GroupOpPrepare, Members: []string{self}, Err: err}
		}
	}
	if !a.allProtected() {
		return Point{}, &group.PhaseError{Phase: api.GroupOpPrepare, Members: []string{self}, Err: errors.New(self + ": a disk is still in initial sync or resync")}
	}
	pool, err := a.groupPool()
	if err != nil {
		return Point{}, &group.PhaseError{Phase: group.PhaseConnect, Err: err}
	}
	addrs := map[string]string{}
	for _, m := range asg.Members {
		addrs[m.Machine] = m.Addr
	}
	att := &appAttempt{id: id, kind: hrlfmt.CutGroup}
	att.note.Group = asg.Group
	att.note.Machines = asg.Machines
	l := a.newGroupLocal(att, false)
	p, err := group.Coordinate(ctx, group.Session{Group: asg.Group, ID: id, Self: self, Machines: asg.Machines, Addrs: addrs,
		Cert: *a.groupCertificate(), Pool: pool, Phase: g.cfg.PhaseTimeout, Prepare: g.cfg.PrepareTimeout}, l)
	if err != nil {
		// A round that failed here is what the point reports.
		var pe *group.PhaseError
		if errors.As(err, &pe) && l.roundErr != nil {
			pe.Err = l.roundErr
		}
		return Point{}, err
	}
	p.FreezeSeconds = att.freeze.Seconds()
	return p, nil
}

// groupDue tells whether this agent, as coordinator, should start a group
// point now; request is the operator's request it answers.
func (a *Agent) groupDue() (api.GroupAssignment, string, bool) {
	g := a.group
	if g == nil {
		return api.GroupAssignment{}, "", false
	}
	asg := a.assignment()
	if asg.Group == "" || asg.Coordinator != a.cfg.Machine {
		for _, w := range g.waiting {
			msg := "machine " + a.cfg.Machine + " is in no replication group"
			if asg.Group != "" {
				msg = fmt.Sprintf("machine %s does not coordinate group %s: run this on %s, or lifeboat group point %s", a.cfg.Machine, asg.Group, asg.Coordinator, asg.Group)
			}
			w.resp <- pointResult{err: errors.New(msg)}
		}
		g.waiting = nil
		g.due = time.Time{}
		return asg, "", false
	}
	iv := time.Duration(asg.IntervalSeconds) * time.Second
	if iv != g.interval {
		g.interval = iv
		g.due = time.Time{}
	}
	if g.due.IsZero() && iv > 0 {
		g.due = time.Now().Add(iv)
	}
	if asg.Request != "" && asg.Request != g.lastReq {
		return asg, asg.Request, true
	}
	if len(g.waiting) > 0 {
		return asg, "", true
	}
	return asg, "", iv > 0 && !time.Now().Before(g.due)
}

// groupRound runs a group point as coordinator and answers its waiters.
func (a *Agent) groupRound(ctx context.Context, asg api.GroupAssignment, request string) error {
	g := a.group
	if request != "" {
		g.lastReq = request
	}
	waiting := g.waiting
	g.waiting = nil
	p, err := a.coordinate(ctx, asg, request)
	if g.interval > 0 {
		g.due = time.Now().Add(g.interval)
	}
	for _, w := range waiting {
		w.resp <- pointResult{p: p, err: err}
	}
	var re *errRound
	if errors.As(err, &re) {
		return re.err
	}
	return nil
}

// GroupBookmark asks for a group point now; only the group's coordinator
// takes one.
func (a *Agent) GroupBookmark(ctx context.Context) (Point, error) {
	if a.group == nil {
		return Point{}, errors.New("group points are off: start the agent with --group-listen")
	}
	return requestPoint(ctx, a.group.reqs, &pointRequest{at: time.Now(), resp: make(chan pointResult, 1)})
}

func (a *Agent) groupStatus() *GroupStatus {
	g := a.group
	if g == nil {
		return nil
	}
	s := &GroupStatus{Name: g.asg.Group, Machines: g.asg.Machines, Coordinator: g.asg.Coordinator, Listen: g.listen, LastError: g.err}
	if g.last.ID != "" {
		p := g.last
		s.LastPoint = &p
	}
	return s
}

// groupProblem is the status problem of a failed group point, or nil.
func (a *Agent) groupProblem() *Problem {
	g := a.group
	if g == nil || g.asg.Group == "" {
		return nil
	}
	if g.listenErr != "" {
		return &Problem{Code: ProblemGroupListen, What: "machine in group " + g.asg.Group + " but " + g.listenErr,
			Remedy: "the port is in use or needs privileges: restart the agent with another --group-listen HOST:PORT that every member reaches"}
	}
	if g.err == "" {
		return nil
	}
	remedy := "replication goes on; the next group point is tried at the next interval. Check that every member's agent runs and reaches the others' --group-listen address (lifeboat group show " + g.asg.Group + ")"
	if strings.Contains(g.err, "too fast to freeze") {
		remedy = "a member's disks change too fast to freeze briefly; the next group point is tried at the next interval"
	}
	return &Problem{Code: ProblemGroupPoint, What: "last group point failed: " + g.err, Remedy: remedy}
}
