package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
)

// MemberTimeouts bound a member's waits for the coordinator.
type MemberTimeouts struct {
	// Phase bounds the wait for each request and each answer's send.
	Phase time.Duration
	// FrozenMax is the hard limit of the freeze: past it the member thaws
	// on its own whatever the coordinator does.
	FrozenMax time.Duration
}

// errNotDecided: the validating round never asked whether to commit.
var errNotDecided = errors.New("not decided")

// Member runs this machine's side of the group point that the
// coordinator opened on c (c.First is its prepare, already checked). It
// answers every phase and returns why the point failed here, nil once its
// part is committed. It never stays frozen past t.FrozenMax.
func Member(ctx context.Context, c *Conn, l Local, t MemberTimeouts, log *slog.Logger) error {
	id := c.First.ID
	phase := func() time.Time { return time.Now().Add(t.Phase) }
	fail := func(op string, err error) error {
		c.Reply(op, err, phase())
		return fmt.Errorf("group point %s (%s): %w", id, op, err)
	}
	if err := l.Prepare(ctx); err != nil {
		return fail(api.GroupOpPrepare, err)
	}
	c.Reply(api.GroupOpPrepare, nil, phase())
	// wait reads the next request; while frozen never past the hard
	// local limit.
	frozenUntil := time.Time{}
	wait := func(want string) error {
		d := phase()
		if !frozenUntil.IsZero() {
			d = frozenUntil
		}
		m, err := c.Recv(d)
		if err == nil && m.Op != want {
			err = fmt.Errorf("coordinator sent %s (%s) instead of %s", m.Op, m.Error, want)
		}
		return err
	}
	abort := func(op string, err error) error {
		if thawErr := l.Thaw(ctx); thawErr != nil {
			err = errors.Join(err, thawErr)
		}
		if !frozenUntil.IsZero() {
			log.Warn("group point abandoned: thawed on our own", "err", err)
		}
		return fail(op, err)
	}
	if err := wait(api.GroupOpFreeze); err != nil {
		return abort(api.GroupOpFreeze, err)
	}
	if err := l.Freeze(); err != nil {
		return abort(api.GroupOpFreeze, err)
	}
	frozenUntil = time.Now().Add(t.FrozenMax)
	c.Reply(api.GroupOpFreeze, nil, frozenUntil)
	if err := wait(api.GroupOpCut); err != nil {
		return abort(api.GroupOpCut, err)
	}
	if err := l.Cut(ctx); err != nil {
		return abort(api.GroupOpCut, err)
	}
	c.Reply(api.GroupOpCut, nil, frozenUntil)
	waitErr := wait(api.GroupOpThaw)
	frozenUntil = time.Time{}
	if err := errors.Join(waitErr, l.Thaw(ctx)); err != nil {
		return fail(api.GroupOpThaw, err)
	}
	c.Reply(api.GroupOpThaw, nil, phase())
	if err := wait(api.GroupOpValidate); err != nil {
		return fail(api.GroupOpValidate, err)
	}
	commitErr := errNotDecided
	decide := func(valid bool) bool {
		var verr error
		if !valid {
			verr = errors.New("writes landed on blocks read while frozen before they were validated")
		}
		if err := c.Reply(api.GroupOpValidate, verr, phase()); err != nil || verr != nil {
			commitErr = errors.Join(verr, err)
			return false
		}
		if err := wait(api.GroupOpCommit); err != nil {
			commitErr = err
			return false
		}
		return true
	}
	written := func(_ api.AgentPoint, err error) {
		commitErr = err
		c.Reply(api.GroupOpCommit, err, phase())
	}
	if err := l.Validate(ctx, decide, written); err != nil {
		return fail(api.GroupOpValidate, err)
	}
	if commitErr != nil {
		if errors.Is(commitErr, errNotDecided) {
			commitErr = errors.New("no validating round")
		}
		return fmt.Errorf("group point %s: %w", id, commitErr)
	}
	return nil
}
