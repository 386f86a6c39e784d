package process

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/internal/fsutil"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/store"
)

// Files of a joined process server's data directory.
const (
	// JoinFile says which configuration server this process server
	// joined, under which id.
	JoinFile = "join.json"
	// AssignmentsFile keeps the last heartbeat answer, so that a
	// restarted process server serves its machines before it reaches
	// the configuration server again.
	AssignmentsFile = "assignments.json"
)

// JoinInfo is the content of DataDir/join.json.
type JoinInfo struct {
	// ConfigServer is the configuration server's URL or host:port.
	ConfigServer string `json:"config_server"`
	// ID is this process server's id.
	ID string `json:"id"`
	// ConfigID is the configuration server's id: only its certificate
	// may drain this server.
	ConfigID string    `json:"config_id"`
	Joined   time.Time `json:"joined"`
}

// MemberMachines is what a joined process server's membership needs of
// the machine records and of the process role that serves them.
type MemberMachines interface {
	Get(name string) (machines.Record, bool)
	// Touch changes a record in memory and on file, creating it.
	Touch(name string, f func(m *machines.Record))
	// Served is what the heartbeat reports of a machine served here:
	// its last contact, its disks' state and their problems.
	Served(ctx context.Context, m string) api.ServedMachine
	// Drain stops the acceptance of a machine (the caller marked it),
	// waits until every segment acknowledged is applied, then forgets
	// the machine's disks; Release only forgets them.
	Drain(ctx context.Context, m string) ([]api.DiskState, error)
	Release(m string)
}

// MembershipOptions configure NewMembership.
type MembershipOptions struct {
	// DataDir holds AssignmentsFile.
	DataDir string
	// Join is the data directory's join.json (its ConfigServer already
	// overridden where asked); Client reaches that configuration server
	// with this server's certificate.
	Join   JoinInfo
	Client *client.Server
	// Addr is the process role's address as agents reach it; Roles are
	// the roles this server runs, both reported in each heartbeat.
	Addr     func() string
	Roles    []string
	Machines MemberMachines
	// Revoked is this server's revocation list (its process port checks
	// it in the handshake): every heartbeat answer's list is added to it,
	// durably, so that a restart without the configuration server still
	// refuses what it revoked. Nil: not kept.
	Revoked *pki.Revocations
	// Cert is this server's certificate, which its process port presents
	// and its heartbeats use: renewed when RenewDue (nil: the default,
	// RenewDue) says so (renew.go). Nil: never renewed.
	Cert     *pki.LiveCert
	RenewDue func(leaf *x509.Certificate, now time.Time) bool
	// Log; nil means slog.Default().
	Log *slog.Logger
}

// Membership is a joined process server's side of scale-out: it reports
// to the configuration server every api.DefaultHeartbeatSeconds, serves
// the machines the last answer assigned to it (kept in AssignmentsFile so
// that a restart serves them before it reaches the configuration server
// again), and drains a machine when the configuration server moves it
// away; a drained machine is refused until assigned again with a larger
// epoch.
type Membership struct {
	o MembershipOptions

	mu       sync.Mutex
	assigned map[string]api.Assignment // the last heartbeat answer
	synced   bool                      // assigned is from a heartbeat or AssignmentsFile
	released map[string]uint64         // machine -> epoch of its drain
	lastOK   time.Time
	lastErr  string
	renewErr string // the last renewal's failure, "" once one succeeds
}

// NewMembership returns the membership of a joined process server, with
// the assignment it last saved.
func NewMembership(o MembershipOptions) *Membership {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Membership{o: o, assigned: map[string]api.Assignment{}, released: map[string]uint64{}}
	b, err := os.ReadFile(filepath.Join(o.DataDir, AssignmentsFile))
	if err == nil {
		var as []api.Assignment
		if json.Unmarshal(b, &as) == nil {
			s.applyAssignments(as, false)
		}
	}
	return s
}

// ID is this process server's id.
func (s *Membership) ID() string { return s.o.Join.ID }

// ReadJoin reads DataDir/join.json; ok is false when the directory is not
// a joined process server's.
func ReadJoin(dir string) (ji JoinInfo, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, JoinFile))
	if errors.Is(err, os.ErrNotExist) {
		return ji, false, nil
	}
	if err != nil {
		return ji, false, fmt.Errorf("read %s: %w", JoinFile, err)
	}
	if err := json.Unmarshal(b, &ji); err != nil {
		return ji, false, fmt.Errorf("read %s: %w", JoinFile, err)
	}
	return ji, true, nil
}

// JoinOptions configure Join.
type JoinOptions struct {
	// DataDir is the new data directory of the process server.
	DataDir string
	// ConfigServer is the configuration server's URL or host:port.
	ConfigServer string
	// ID names the process server; Passphrase is the registration
	// passphrase of the configuration server.
	ID, Passphrase string
	// SANs are the names agents reach the process server by (the host
	// of its --advertise address).
	SANs []string
}

// Join makes the data directory of a process server that joins a
// configuration server: it gets a certificate from the configuration
// server's CA (client.Join) and writes ca.crt, server.crt, server.key and
// join.json. It refuses a directory that holds a CA or a join already.
func Join(ctx context.Context, o JoinOptions) error {
	for _, f := range []string{pki.CACertFile, JoinFile} {
		if _, err := os.Lstat(filepath.Join(o.DataDir, f)); err == nil {
			return &httpapi.Error{Msg: fmt.Sprintf("%s already holds %s", o.DataDir, f), Remedy: "give the joining server a data directory of its own"}
		}
	}
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	sans := slices.Clone(o.SANs)
	sans = append(sans, "localhost", "127.0.0.1", "::1")
	if h, err := os.Hostname(); err == nil && h != "" {
		sans = append(sans, h)
	}
	ans, err := client.Join(ctx, o.ConfigServer, o.ID, o.Passphrase, sans, key)
	if err != nil {
		return err
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	ji, _ := json.MarshalIndent(JoinInfo{ConfigServer: o.ConfigServer, ID: o.ID, ConfigID: ans.ConfigID, Joined: time.Now().UTC()}, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{pki.ServerKeyFile, keyPEM, 0o600},
		{pki.ServerCertFile, []byte(ans.Certificate), 0o644},
		{pki.CACertFile, []byte(ans.CA), 0o644},
		{JoinFile, append(ji, '\n'), 0o644},
	} {
		if err := fsutil.WriteFileAtomic(filepath.Join(o.DataDir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("join: %w", err)
		}
	}
	return nil
}

// Run reports to the configuration server every interval and
// applies the assignment it answers, until ctx is done.
func (s *Membership) Run(ctx context.Context) {
	log := s.o.Log.With(httpapi.LogComponent, "scaleout")
	interval := api.DefaultHeartbeatSeconds * time.Second
	for {
		if err := s.heartbeat(ctx); err != nil && ctx.Err() == nil {
			s.mu.Lock()
			first := s.lastErr == ""
			s.lastErr = err.Error()
			s.mu.Unlock()
			if first {
				log.Warn("cannot reach the configuration server; serving the last known assignment", httpapi.LogErr, err,
					"hint", "check that the configuration server at "+s.o.Join.ConfigServer+" runs and that this server's certificate is still its latest join")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (s *Membership) heartbeat(ctx context.Context) error {
	hb := api.Heartbeat{Address: s.o.Addr(), Roles: s.o.Roles, Machines: []api.ServedMachine{}}
	if s.o.Revoked != nil {
		if list, err := s.o.Revoked.List(); err == nil {
			hb.RevokedDigest = pki.ListDigest(list)
		}
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.assigned))
	for m := range s.assigned {
		names = append(names, m)
	}
	s.mu.Unlock()
	slices.Sort(names)
	for _, m := range names {
		if s.Check(m) != nil {
			continue
		}
		hb.Machines = append(hb.Machines, s.o.Machines.Served(ctx, m))
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ans, err := s.o.Client.Heartbeat(hctx, hb)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.lastOK, s.lastErr = time.Now(), ""
	s.mu.Unlock()
	s.applyAssignments(ans.Machines, true)
	s.renewIfDue(ctx)
	if s.o.Revoked != nil && len(ans.Revoked) > 0 {
		list := make([]pki.Revoked, 0, len(ans.Revoked))
		for _, e := range ans.Revoked {
			list = append(list, pki.Revoked{Serial: e.Serial, Name: e.Name, Time: e.Time, Reason: e.Reason})
		}
		// Revocations are never taken back: the configuration server's
		// list is added to ours, and only what is new is written.
		if err := s.o.Revoked.Revoke(list...); err != nil {
			// Retried at every heartbeat; until then what is new on the
			// list is still accepted here.
			s.o.Log.With(httpapi.LogComponent, "scaleout").Error("cannot keep the configuration server's revocation list", httpapi.LogErr, err,
				"hint", "free space in the data directory or fix its permissions; revoked certificates are accepted here until then")
		}
	}
	return nil
}

// applyAssignments makes as the machines this joined server serves, and
// their records what the configuration server says of them.
func (s *Membership) applyAssignments(as []api.Assignment, save bool) {
	next := map[string]api.Assignment{}
	for _, a := range as {
		if api.ValidName(a.Machine) == nil {
			next[a.Machine] = a
		}
	}
	s.mu.Lock()
	prev := s.assigned
	s.assigned, s.synced = next, true
	for m, e := range s.released {
		if a, ok := next[m]; ok && a.Epoch > e {
			delete(s.released, m) // assigned to us again since
		}
	}
	s.mu.Unlock()
	for m, a := range next {
		if p, ok := prev[m]; !ok || p.Epoch != a.Epoch {
			// Newly assigned: anything known of it from before is
			// stale; load it afresh from target storage.
			s.o.Machines.Release(m)
		}
	}
	for m := range prev {
		if _, ok := next[m]; !ok {
			// Moved away (drained before) or forced away: what we
			// know of it is stale from now on.
			s.o.Machines.Release(m)
		}
	}
	for _, a := range next {
		pol := store.Retention{Window: time.Duration(a.Policy.WindowSeconds) * time.Second,
			KeepAll: time.Duration(a.Policy.KeepAllSeconds) * time.Second, Thin: time.Duration(a.Policy.ThinSeconds) * time.Second}
		state := a.State
		if state == api.StateProtected {
			state = ""
		}
		if _, onFile := s.o.Machines.Get(a.Machine); !save && onFile {
			// At start the record on file wins over the saved
			// answer, as it always has; the next heartbeat applies
			// the answer to it.
			continue
		}
		s.o.Machines.Touch(a.Machine, func(rec *machines.Record) {
			rec.State, rec.Serial, rec.SerialOnly, rec.Epoch = state, a.Serial, a.SerialOnly, a.Epoch
			if a.Policy.Default {
				rec.Policy = nil
			} else {
				rec.Policy = &pol
			}
		})
	}
	if save {
		b, _ := json.MarshalIndent(as, "", "  ")
		if err := fsutil.WriteFileAtomic(filepath.Join(s.o.DataDir, AssignmentsFile), append(b, '\n'), 0o600); err != nil {
			s.o.Log.With(httpapi.LogComponent, "scaleout").Warn("save assignments", httpapi.LogErr, err)
		}
	}
}

// Check refuses a machine a joined server must not serve.
func (s *Membership) Check(machine string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.synced {
		return httpapi.Errorf(http.StatusServiceUnavailable, "process server "+s.o.Join.ID+" has not heard from the configuration server yet",
			"check that the configuration server at "+s.o.Join.ConfigServer+" runs; the agent retries")
	}
	a, ok := s.assigned[machine]
	if e, drained := s.released[machine]; ok && drained && a.Epoch <= e {
		return httpapi.Moving("machine " + machine + " is being moved away from process server " + s.o.Join.ID)
	}
	if !ok {
		return httpapi.Errorf(http.StatusMisdirectedRequest, fmt.Sprintf("machine %s is not assigned to process server %s", machine, s.o.Join.ID),
			"the agent learns its process server from the configuration server within seconds; 'lifeboat machines' shows the assignment")
	}
	return nil
}

// Drain handles POST /v1/drain/{m} on a joined server's process role:
// from the configuration server only. On a nil Membership (a server that
// joined none) it answers 404.
func (s *Membership) Drain(w http.ResponseWriter, r *http.Request) error {
	if s == nil {
		return httpapi.Errorf(http.StatusNotFound, "this process server joined no configuration server", "the configuration server drains its own process role itself")
	}
	if !s.fromConfigServer(r) {
		return httpapi.Errorf(http.StatusForbidden, "only the configuration server may drain a process server", "move machines with 'lifeboat move'")
	}
	m := r.PathValue("m")
	if err := api.ValidName(m); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad machine name: "+err.Error(), "see docs/protocol.md")
	}
	var req api.DrainRequest
	if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	s.mu.Lock()
	prev, had := s.released[m]
	s.released[m] = req.Epoch
	s.mu.Unlock()
	ds, err := s.o.Machines.Drain(r.Context(), m)
	if err != nil {
		s.mu.Lock()
		if had {
			s.released[m] = prev
		} else {
			delete(s.released, m)
		}
		s.mu.Unlock()
		return err
	}
	s.o.Log.With(httpapi.LogComponent, "scaleout", httpapi.LogMachine, m).Info("drained for a move", "to", req.To, "epoch", req.Epoch)
	httpapi.WriteJSON(w, http.StatusOK, api.DrainResult{Disks: ds})
	return nil
}

// fromConfigServer reports whether r comes with the certificate of the
// configuration server this server joined (the TLS layer verified it).
func (s *Membership) fromConfigServer(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && r.TLS.PeerCertificates[0].Subject.CommonName == pki.ServerCNPrefix+s.o.Join.ConfigID
}
