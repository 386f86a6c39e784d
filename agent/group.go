package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
)

// Group points (DESIGN.md §4): the machines of a replication group cut
// together. The coordinator (the group's first machine by name) opens one
// mutual-TLS connection to every other member's group listener and walks
// them all through the phases of a freezing point, one message a phase,
// each answered before the next is sent:
//
//	prepare (pre-scripts, syncfs, drain) → freeze (all) → cut (all, same
//	point id) → thaw (all) → validate (each member's next round says
//	whether its frozen reads were untouched) → commit or abort
//
// A member writes its CUT of kind group only on commit. Any member that
// fails or does not answer within the phase timeout fails the point for
// the whole group: everybody is told to abort, and thaws. A member frozen
// by a coordinator that vanished thaws on its own once FrozenMax has
// passed since its freeze, or at once if the connection drops.

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

// group message operations.
const (
	opPrepare  = "prepare"
	opFreeze   = "freeze"
	opCut      = "cut"
	opThaw     = "thaw"
	opValidate = "validate"
	opCommit   = "commit"
	opAbort    = "abort"
)

// groupMsg is one line of the group protocol (docs/protocol.md): a
// request of the coordinator, or a member's answer with the same op.
type groupMsg struct {
	Op      string `json:"op"`
	Group   string `json:"group,omitempty"`
	ID      string `json:"id,omitempty"`
	Machine string `json:"machine,omitempty"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
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

	sessions chan *groupConn    // accepted, first message read
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

// groupConn is one connection of the group protocol.
type groupConn struct {
	c     net.Conn
	r     *bufio.Reader
	peer  string // the machine at the other end (its certificate's name)
	first groupMsg
	mu    sync.Mutex
}

func newGroupConn(c net.Conn, peer string) *groupConn {
	return &groupConn{c: c, r: bufio.NewReaderSize(c, 4096), peer: peer}
}

func (g *groupConn) send(m groupMsg, deadline time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, _ := json.Marshal(m)
	g.c.SetWriteDeadline(deadline)
	_, err := g.c.Write(append(b, '\n'))
	return err
}

func (g *groupConn) recv(deadline time.Time) (groupMsg, error) {
	var m groupMsg
	g.c.SetReadDeadline(deadline)
	line, err := g.r.ReadSlice('\n')
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return m, fmt.Errorf("%s did not answer in time", g.peer)
		}
		return m, fmt.Errorf("connection to %s: %w", g.peer, err)
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("bad message from %s: %w", g.peer, err)
	}
	return m, nil
}

// reply answers op with err (nil: ok).
func (g *groupConn) reply(op string, err error, deadline time.Time) error {
	m := groupMsg{Op: op, OK: err == nil}
	if err != nil {
		m.Error = err.Error()
	}
	return g.send(m, deadline)
}

// verifyMember checks a chain against the CA, for a machine certificate
// (client auth usage: machine certificates serve both ends here), and
// returns its machine name.
func verifyMember(pool *x509.CertPool, raw [][]byte) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return "", err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", err
	}
	return certs[0].Subject.CommonName, nil
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
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{g.cfg.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	ln, err := tls.Listen("tcp", g.cfg.Listen, cfg)
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
	gc := newGroupConn(c, peer)
	m, err := gc.recv(deadline)
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
	case m.Op != opPrepare:
		err = fmt.Errorf("expected %s, got %q", opPrepare, m.Op)
	case asg.Group == "" || m.Group != asg.Group:
		err = fmt.Errorf("machine %s is not in group %q (its group: %q)", a.cfg.Machine, m.Group, asg.Group)
	case peer != asg.Coordinator:
		err = fmt.Errorf("%s does not coordinate group %s (%s does)", peer, asg.Group, asg.Coordinator)
	case m.ID == "" || len(m.ID) > 64:
		err = errors.New("bad point id")
	}
	if err != nil {
		a.log.Warn("group: refused a session", "peer", peer, "err", err)
		gc.reply(opPrepare, err, deadline)
		c.Close()
		return
	}
	gc.first = m
	select {
	case g.sessions <- gc:
	case <-time.After(g.cfg.PhaseTimeout):
		gc.reply(opPrepare, errors.New("busy: the agent's loop did not take the session in time"), time.Now().Add(time.Second))
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

// member runs this machine's side of a group point that the coordinator
// opened with gc; it returns only a round's error.
func (a *Agent) member(ctx context.Context, gc *groupConn) error {
	defer gc.c.Close()
	g := a.group
	id := gc.first.ID
	log := a.log.With("group", gc.first.Group, "point", id, "coordinator", gc.peer)
	phase := func() time.Time { return time.Now().Add(g.cfg.PhaseTimeout) }
	fail := func(op string, err error) {
		gc.reply(op, err, phase())
		a.setGroupResult(nil, fmt.Errorf("group point %s (%s): %w", id, op, err))
	}
	if a.app != nil {
		// An app point waits for its validating round: run it first.
		if _, err := a.round(ctx, 0, time.Time{}); err != nil {
			fail(opPrepare, err)
			return err
		}
	}
	if !a.allProtected() {
		fail(opPrepare, errors.New("a disk is still in initial sync or resync"))
		return nil
	}
	att := &appAttempt{id: id, kind: hrlfmt.CutGroup}
	att.note.Group = gc.first.Group
	ph := a.newPhases(att)
	if err := ph.prepare(ctx); err != nil {
		fail(opPrepare, err)
		var re *errRound
		if errors.As(err, &re) {
			return re.err
		}
		return nil
	}
	gc.reply(opPrepare, nil, phase())
	// wait reads the next request; while frozen never past the hard
	// local limit.
	frozenUntil := time.Time{}
	wait := func(want string) error {
		d := phase()
		if !frozenUntil.IsZero() {
			d = frozenUntil
		}
		m, err := gc.recv(d)
		if err == nil && m.Op != want {
			err = fmt.Errorf("coordinator sent %s (%s) instead of %s", m.Op, m.Error, want)
		}
		return err
	}
	abort := func(op string, err error) {
		if thawErr := ph.abort(ctx); thawErr != nil {
			err = errors.Join(err, thawErr)
		}
		if !frozenUntil.IsZero() {
			log.Warn("group point abandoned: thawed on our own", "err", err)
		}
		fail(op, err)
	}
	if err := wait(opFreeze); err != nil {
		abort(opFreeze, err)
		return nil
	}
	if err := ph.freeze(); err != nil {
		abort(opFreeze, err)
		return nil
	}
	frozenUntil = time.Now().Add(g.cfg.FrozenMax)
	gc.reply(opFreeze, nil, frozenUntil)
	if err := wait(opCut); err != nil {
		abort(opCut, err)
		return nil
	}
	if err := ph.cut(ctx); err != nil {
		abort(opCut, err)
		var re *errRound
		if errors.As(err, &re) {
			return re.err
		}
		return nil
	}
	gc.reply(opCut, nil, frozenUntil)
	waitErr := wait(opThaw)
	frozenUntil = time.Time{}
	if err := errors.Join(waitErr, ph.abort(ctx)); err != nil {
		fail(opThaw, err)
		return nil
	}
	gc.reply(opThaw, nil, phase())
	if err := wait(opValidate); err != nil {
		fail(opValidate, err)
		return nil
	}
	var commitErr error = errors.New("not decided")
	att.decide = func(valid bool) bool {
		var verr error
		if !valid {
			verr = errors.New("writes landed on blocks read while frozen before they were validated")
		}
		if err := gc.reply(opValidate, verr, phase()); err != nil || verr != nil {
			commitErr = errors.Join(verr, err)
			return false
		}
		if err := wait(opCommit); err != nil {
			commitErr = err
			return false
		}
		return true
	}
	att.done = func(p Point, err error) {
		commitErr = err
		gc.reply(opCommit, err, phase())
	}
	a.app = att
	if _, err := a.round(ctx, 0, time.Time{}); err != nil {
		a.app = nil
		fail(opValidate, err)
		return err
	}
	if commitErr != nil {
		if att.done != nil && commitErr.Error() == "not decided" {
			commitErr = errors.New("no validating round")
		}
		a.setGroupResult(nil, fmt.Errorf("group point %s: %w", id, commitErr))
		return nil
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
	a.mu.Unlock()
	a.pointDue = time.Now().Add(a.cfg.PointInterval)
	return p, a.save()
}

// peerCall is one member's answer to a phase.
type peerCall struct {
	peer string
	err  error
}

// coordinate runs a group point across the group's members and reports
// its outcome to the server.
func (a *Agent) coordinate(ctx context.Context, asg api.GroupAssignment, request string) (Point, error) {
	g := a.group
	id := newPointID()
	res := api.GroupPointResult{Group: asg.Group, ID: id, Request: request, Time: time.Now().UTC(), Failed: []string{}}
	log := a.log.With("group", asg.Group, "point", id)
	p, phase, failed, err := a.runGroupPoint(ctx, asg, id, log)
	if err != nil {
		res.Phase, res.Error = phase, err.Error()
		if failed == nil {
			failed = []string{}
		}
		res.Failed = failed
		err = fmt.Errorf("group point %s failed at %s: %w", id, phase, err)
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

// runGroupPoint is the coordinator's walk through the phases; on error it
// returns the phase and the machines that failed.
func (a *Agent) runGroupPoint(ctx context.Context, asg api.GroupAssignment, id string, log interface{ Warn(string, ...any) }) (Point, string, []string, error) {
	g := a.group
	if a.app != nil {
		if _, err := a.round(ctx, 0, time.Time{}); err != nil {
			return Point{}, opPrepare, []string{a.cfg.Machine}, err
		}
	}
	if !a.allProtected() {
		return Point{}, opPrepare, []string{a.cfg.Machine}, errors.New(a.cfg.Machine + ": a disk is still in initial sync or resync")
	}
	// Connect to every other member.
	pool, err := a.groupPool()
	if err != nil {
		return Point{}, "connect", nil, err
	}
	addrs := map[string]string{}
	for _, m := range asg.Members {
		addrs[m.Machine] = m.Addr
	}
	var peers []*groupConn
	defer func() {
		for _, p := range peers {
			p.c.Close()
		}
	}()
	var mu sync.Mutex
	var failed []string
	var errs []error
	var wg sync.WaitGroup
	for _, m := range asg.Machines {
		if m == a.cfg.Machine {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			gc, err := a.dialMember(ctx, pool, m, addrs[m])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, m)
				errs = append(errs, fmt.Errorf("%s: %w", m, err))
				return
			}
			peers = append(peers, gc)
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		slices.Sort(failed)
		return Point{}, "connect", failed, errors.Join(errs...)
	}
	// call sends op to every peer and, once local has run here, collects
	// their answers until deadline.
	call := func(op string, timeout time.Duration, local func() error) ([]string, error) {
		deadline := time.Now().Add(timeout)
		ch := make(chan peerCall, len(peers))
		for _, p := range peers {
			go func() {
				err := p.send(groupMsg{Op: op, Group: asg.Group, ID: id, Machine: a.cfg.Machine}, deadline)
				if err == nil {
					var m groupMsg
					m, err = p.recv(deadline)
					if err == nil && (m.Op != op || !m.OK) {
						err = fmt.Errorf("%s: %s", op, m.Error)
					}
				}
				ch <- peerCall{p.peer, err}
			}()
		}
		var failed []string
		var errs []error
		if local != nil {
			if err := local(); err != nil {
				failed = append(failed, a.cfg.Machine)
				errs = append(errs, fmt.Errorf("%s: %w", a.cfg.Machine, err))
			}
		}
		for range peers {
			r := <-ch
			if r.err != nil {
				failed = append(failed, r.peer)
				errs = append(errs, fmt.Errorf("%s: %w", r.peer, r.err))
			}
		}
		slices.Sort(failed)
		return failed, errors.Join(errs...)
	}
	abortAll := func() {
		for _, p := range peers {
			p.send(groupMsg{Op: opAbort, Group: asg.Group, ID: id, Machine: a.cfg.Machine}, time.Now().Add(time.Second))
		}
	}
	att := &appAttempt{id: id, kind: hrlfmt.CutGroup}
	att.note.Group = asg.Group
	att.note.Machines = asg.Machines
	ph := a.newPhases(att)
	fail := func(phase string, failed []string, err error) (Point, string, []string, error) {
		abortAll()
		if terr := ph.abort(ctx); terr != nil {
			err = errors.Join(err, terr)
		}
		return Point{}, phase, failed, err
	}
	var roundErr error
	local := func(f func() error) func() error {
		return func() error {
			err := f()
			var re *errRound
			if errors.As(err, &re) {
				roundErr = re.err
			}
			return err
		}
	}
	steps := []struct {
		op      string
		timeout time.Duration
		run     func() error
	}{
		{opPrepare, g.cfg.PrepareTimeout, local(func() error { return ph.prepare(ctx) })},
		{opFreeze, g.cfg.PhaseTimeout, ph.freeze},
		{opCut, g.cfg.PhaseTimeout, local(func() error { return ph.cut(ctx) })},
		{opThaw, g.cfg.PhaseTimeout, func() error { err := ph.thaw(); ph.post(ctx); return err }},
	}
	for _, st := range steps {
		if f, err := call(st.op, st.timeout, st.run); err != nil {
			p, phase, failed, err := fail(st.op, f, err)
			if roundErr != nil {
				return p, phase, failed, roundErr
			}
			return p, phase, failed, err
		}
	}
	// Validate: every member's next round checks its frozen reads; the
	// point is committed only if all are valid.
	validateCh := make(chan peerCall, len(peers))
	deadline := time.Now().Add(g.cfg.PhaseTimeout)
	for _, p := range peers {
		go func() {
			err := p.send(groupMsg{Op: opValidate, Group: asg.Group, ID: id, Machine: a.cfg.Machine}, deadline)
			if err == nil {
				var m groupMsg
				if m, err = p.recv(deadline); err == nil && (m.Op != opValidate || !m.OK) {
					err = fmt.Errorf("validate: %s", m.Error)
				}
			}
			validateCh <- peerCall{p.peer, err}
		}()
	}
	var vfailed []string
	var verrs []error
	var commitErr error
	committed := false
	att.decide = func(valid bool) bool {
		if !valid {
			vfailed = append(vfailed, a.cfg.Machine)
			verrs = append(verrs, errors.New(a.cfg.Machine+": writes landed on blocks read while frozen"))
		}
		for range peers {
			r := <-validateCh
			if r.err != nil {
				vfailed = append(vfailed, r.peer)
				verrs = append(verrs, fmt.Errorf("%s: %w", r.peer, r.err))
			}
		}
		if len(verrs) > 0 {
			abortAll()
			return false
		}
		committed = true
		return true
	}
	var point Point
	att.done = func(p Point, err error) {
		point, commitErr = p, err
	}
	a.app = att
	if _, err := a.round(ctx, 0, time.Time{}); err != nil {
		a.app = nil
		abortAll()
		return Point{}, opValidate, []string{a.cfg.Machine}, err
	}
	if !committed {
		if len(verrs) == 0 {
			verrs = append(verrs, errors.New("no validating round"))
		}
		slices.Sort(vfailed)
		return Point{}, opValidate, vfailed, errors.Join(verrs...)
	}
	// Commit: each member writes its CUT and says so.
	var cfailed []string
	var cerrs []error
	if commitErr != nil {
		cfailed = append(cfailed, a.cfg.Machine)
		cerrs = append(cerrs, commitErr)
	}
	f, err := call(opCommit, g.cfg.PhaseTimeout, nil)
	if err != nil || commitErr != nil {
		cfailed = append(cfailed, f...)
		cerrs = append(cerrs, err)
		slices.Sort(cfailed)
		return Point{}, opCommit, cfailed, errors.Join(cerrs...)
	}
	point.FreezeSeconds = att.freeze.Seconds()
	return point, "", nil, nil
}

// dialMember opens the group connection to member m at addr and checks
// that the certificate there is m's.
func (a *Agent) dialMember(ctx context.Context, pool *x509.CertPool, m, addr string) (*groupConn, error) {
	if addr == "" {
		return nil, errors.New("its agent has not reported a group listen address (is it running, with --group-listen?)")
	}
	g := a.group
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{g.cfg.Cert},
		// The name is checked below: members are named by their
		// certificates' CommonName, not by host names.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			cn, err := verifyMember(pool, raw)
			if err != nil {
				return fmt.Errorf("certificate at %s: %w", addr, err)
			}
			if cn != m {
				return fmt.Errorf("%s answers as %q, not %q", addr, cn, m)
			}
			return nil
		},
	}
	dctx, cancel := context.WithTimeout(ctx, g.cfg.PhaseTimeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("no answer from %s within %s", addr, g.cfg.PhaseTimeout)
		}
		return nil, err
	}
	return newGroupConn(c, m), nil
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
	req := &pointRequest{at: time.Now(), resp: make(chan pointResult, 1)}
	select {
	case a.group.reqs <- req:
	case <-ctx.Done():
		return Point{}, ctx.Err()
	}
	select {
	case r := <-req.resp:
		return r.p, r.err
	case <-ctx.Done():
		return Point{}, ctx.Err()
	}
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
