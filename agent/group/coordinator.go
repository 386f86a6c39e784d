package group

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Session is one group point as its coordinator runs it.
type Session struct {
	Group, ID string
	// Self is the coordinator's machine; Machines every member's,
	// Self included; Addrs their group listeners.
	Self     string
	Machines []string
	Addrs    map[string]string
	// Cert is the coordinator's certificate, Pool the CA of every
	// member's.
	Cert tls.Certificate
	Pool *x509.CertPool
	// Phase bounds each phase but prepare, Prepare bounds prepare.
	Phase, Prepare time.Duration
}

// Coordinate walks every other member through the phases of a group
// point, running this machine's part with l, and commits it only if
// every member validated its reads. On failure everybody is told to
// abort, this machine thaws, and the error is a *PhaseError.
func Coordinate(ctx context.Context, s Session, l Local) (api.AgentPoint, error) {
	peers, perr := dialAll(ctx, s)
	defer func() {
		for _, p := range peers {
			p.Close()
		}
	}()
	if perr != nil {
		return api.AgentPoint{}, perr
	}
	req := func(op string) api.GroupMessage {
		return api.GroupMessage{Op: op, Group: s.Group, ID: s.ID, Machine: s.Self}
	}
	abortAll := func() { Tell(peers, req(api.GroupOpAbort), time.Now().Add(time.Second)) }
	// phase runs one phase everywhere: local here while the members run
	// theirs.
	phase := func(op string, timeout time.Duration, local func() error) *PhaseError {
		answers := Ask(peers, req(op), timeout)
		var mine []Failure
		if local != nil {
			if err := local(); err != nil {
				mine = append(mine, failure(s.Self, err))
			}
		}
		return answers.Collect(mine...)
	}
	steps := []struct {
		op      string
		timeout time.Duration
		run     func() error
	}{
		{api.GroupOpPrepare, s.Prepare, func() error { return l.Prepare(ctx) }},
		{api.GroupOpFreeze, s.Phase, l.Freeze},
		{api.GroupOpCut, s.Phase, func() error { return l.Cut(ctx) }},
		{api.GroupOpThaw, s.Phase, func() error { return l.Thaw(ctx) }},
	}
	for _, st := range steps {
		if pe := phase(st.op, st.timeout, st.run); pe != nil {
			abortAll()
			if terr := l.Thaw(ctx); terr != nil {
				pe.Err = errors.Join(pe.Err, terr)
			}
			return api.AgentPoint{}, pe
		}
	}
	// Validate: every member's next round checks its frozen reads; the
	// point is committed only if all are valid.
	validate := Ask(peers, req(api.GroupOpValidate), s.Phase)
	var verr *PhaseError
	committed := false
	decide := func(valid bool) bool {
		var mine []Failure
		if !valid {
			mine = append(mine, failure(s.Self, errors.New("writes landed on blocks read while frozen")))
		}
		if verr = validate.Collect(mine...); verr != nil {
			abortAll()
			return false
		}
		committed = true
		return true
	}
	var point api.AgentPoint
	var commitErr error
	written := func(p api.AgentPoint, err error) { point, commitErr = p, err }
	if err := l.Validate(ctx, decide, written); err != nil {
		abortAll()
		return api.AgentPoint{}, &PhaseError{Phase: api.GroupOpValidate, Members: []string{s.Self}, Err: err}
	}
	if !committed {
		if verr == nil {
			verr = &PhaseError{Phase: api.GroupOpValidate, Err: errors.New("no validating round")}
		}
		return api.AgentPoint{}, verr
	}
	// Commit: each member writes its CUT and says so.
	var mine []Failure
	if commitErr != nil {
		mine = append(mine, Failure{Member: s.Self, Err: commitErr})
	}
	if pe := Ask(peers, req(api.GroupOpCommit), s.Phase).Collect(mine...); pe != nil {
		return api.AgentPoint{}, pe
	}
	return point, nil
}

// dialAll connects to every member but the coordinator, at once.
func dialAll(ctx context.Context, s Session) ([]*Conn, *PhaseError) {
	var mu sync.Mutex
	var peers []*Conn
	var fs []Failure
	var wg sync.WaitGroup
	for _, m := range s.Machines {
		if m == s.Self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(ctx, s.Cert, s.Pool, m, s.Addrs[m], s.Phase)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fs = append(fs, failure(m, err))
				return
			}
			peers = append(peers, c)
		}()
	}
	wg.Wait()
	return peers, phaseError(PhaseConnect, fs)
}
