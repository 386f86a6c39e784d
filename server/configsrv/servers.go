package configsrv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
	"github.com/lifeboat-dr/lifeboat/server/machines"
	"github.com/lifeboat-dr/lifeboat/server/pki"
	"github.com/lifeboat-dr/lifeboat/server/recdir"
)

// ServersDir holds one JSON record per process server that joined the
// configuration server.
const ServersDir = "servers"

// DefaultDrainTimeout bounds how long a move waits for the old process
// server to apply what it acknowledged.
const DefaultDrainTimeout = 5 * time.Minute

// ServerMachines is what the scale-out coordination needs of the machine
// records: read them, record an assignment or an epoch, and take the
// machine of an admin URL.
type ServerMachines interface {
	Get(name string) (machines.Record, bool)
	Update(name string, f func(m *machines.Record)) error
	Each(f func(name string, m *machines.Record))
	Param(r *http.Request) (string, error)
}

// LocalProcess is the configuration server's own process role as the
// coordination sees it.
type LocalProcess interface {
	// Addr is the address agents reach it on, completed with reqHost
	// when it listens on every address ("" when it has none).
	Addr(reqHost string) string
	// RegisterAddr is the address to give an agent that registered
	// through r.
	RegisterAddr(r *http.Request) (string, error)
	// Drain stops its acceptance of a machine (the caller marked it),
	// waits until every segment it acknowledged is applied, then
	// forgets the machine's disks.
	Drain(ctx context.Context, m string) ([]api.DiskState, error)
	// Release forgets the disks of a machine and stops their appliers.
	Release(m string)
}

// ServerCA is the CA as the coordination uses it: certificates of joining
// process servers, the check of their reports, and the configuration
// server's own client certificate towards them.
type ServerCA interface {
	IssueJoined(id string, csr *x509.CertificateRequest, sans []string, now time.Time) ([]byte, error)
	VerifyClient(chain []*x509.Certificate) (string, error)
	IssueClientKey(id string, now time.Time) (tls.Certificate, error)
	Pool() *x509.CertPool
}

// ServersOptions configure NewServers.
type ServersOptions struct {
	// DataDir holds ServersDir.
	DataDir string
	// ID is the id of the configuration server's own process role;
	// HasLocal says whether machines can be assigned to it.
	ID       string
	HasLocal bool
	// Roles this server runs (GET /v1/server, 'lifeboat servers').
	Roles []string
	// CA, its certificate and the registration passphrase.
	CA         ServerCA
	CAPEM      []byte
	Passphrase string
	Machines   ServerMachines
	Local      LocalProcess
	// StoreReflink says whether target storage shares extents (nil when
	// it cannot tell) and the warning to give; nil: unknown.
	StoreReflink func() (*bool, string)
	// HeartbeatTimeout: a joined process server silent for longer is
	// shown unhealthy and gets no new machine (0: api.HealthyMissed
	// heartbeats). DrainTimeout bounds the drain of a move (0:
	// DefaultDrainTimeout).
	HeartbeatTimeout time.Duration
	DrainTimeout     time.Duration
	// Revoked is the revocation list every heartbeat answer carries, so
	// that joined process servers refuse the same certificates (nil:
	// none).
	Revoked *pki.Revocations
	// Log; nil means slog.Default().
	Log *slog.Logger
}

// Servers is the scale-out coordination of the configuration role: the
// process servers that joined (DataDir/servers/), their heartbeats, the
// assignment of machines to them and the moves between them (docs/server.md,
// "Scale-out").
type Servers struct {
	o      ServersOptions
	log    *slog.Logger
	moveMu sync.Mutex // one move at a time

	mu      sync.Mutex
	servers map[string]*serverRecord
	beats   map[string]serverBeat
	moving  map[string]bool // machines of the local process role being drained
	hc      *http.Client    // towards joined servers
}

// NewServers returns the coordination; Load reads the joined servers.
func NewServers(o ServersOptions) *Servers {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = api.HealthyMissed * api.DefaultHeartbeatSeconds * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	return &Servers{o: o, log: o.Log, servers: map[string]*serverRecord{}, beats: map[string]serverBeat{}, moving: map[string]bool{}}
}

// serverRecord is DataDir/servers/<id>.json.
type serverRecord struct {
	ID     string    `json:"id"`
	Joined time.Time `json:"joined"`
	// Serial of its certificate: only that one may report.
	Serial string   `json:"serial"`
	SANs   []string `json:"sans"`
	// Renewed is the serial of the certificate its last renewal
	// replaced: it may renew again (the answer was lost), not report.
	Renewed string `json:"renewed,omitempty"`
}

// serverBeat is the last heartbeat of a joined process server (memory).
type serverBeat struct {
	at       time.Time
	addr     string
	roles    []string
	machines map[string]api.ServedMachine
}

// localID is the id of the configuration server's own process role.
func (s *Servers) localID() string { return s.o.ID }

// hasLocalProcess reports whether machines can be assigned to this
// configuration server itself.
func (s *Servers) hasLocalProcess() bool { return s.o.HasLocal }

// serverDir is DataDir/servers.
func (s *Servers) serverDir() *recdir.Dir[serverRecord] {
	return recdir.New[serverRecord](filepath.Join(s.o.DataDir, ServersDir), api.ValidName)
}

// Load reads the records of the process servers that joined.
func (s *Servers) Load() error {
	recs, err := s.serverDir().List()
	if err != nil {
		return fmt.Errorf("load servers: %w", err)
	}
	for _, r := range recs {
		rec := r.Value
		rec.ID = r.Name
		s.mu.Lock()
		s.servers[r.Name] = &rec
		s.mu.Unlock()
	}
	return nil
}

// Join handles POST /v1/servers/join: a process server proves it
// knows the registration passphrase and gets its certificate.
func (s *Servers) Join(w http.ResponseWriter, r *http.Request) error {
	var req api.JoinRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	if err := api.ValidName(req.ID); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad process server id: "+err.Error(), "ids are [A-Za-z0-9._-]{1,63}: set --name")
	}
	if req.ID == s.localID() {
		return httpapi.Errorf(http.StatusConflict, fmt.Sprintf("process server id %q is the configuration server's own", req.ID), "give the joining server another --name")
	}
	if nb, err := hex.DecodeString(req.Nonce); err != nil || len(nb) != 32 {
		return httpapi.Errorf(http.StatusBadRequest, "nonce is not 32 bytes of hex", "see docs/protocol.md for the join request")
	}
	log := s.log.With(httpapi.LogComponent, "config", "server_id", req.ID, httpapi.LogRemote, r.RemoteAddr)
	if !api.ProofEqual(req.Proof, api.JoinProof(s.o.Passphrase, req.ID, req.Nonce, req.CSR)) {
		log.Warn("join refused: wrong passphrase proof")
		return httpapi.Errorf(http.StatusUnauthorized, "wrong passphrase", "the passphrase file must hold the line in the configuration server's DATA/passphrase")
	}
	csr, err := pki.ParseCSRPEM([]byte(req.CSR))
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Msg: "bad csr: " + err.Error(), Remedy: "send one PEM CERTIFICATE REQUEST", Err: err}
	}
	certPEM, err := s.o.CA.IssueJoined(req.ID, csr, req.SANs, time.Now())
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Msg: "cannot issue a certificate for this csr: " + err.Error(), Remedy: "use an ECDSA P-256, Ed25519 or RSA-2048+ key", Err: err}
	}
	cert, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		return err
	}
	rec := serverRecord{ID: req.ID, Joined: time.Now().UTC(), Serial: cert.SerialNumber.Text(16), SANs: req.SANs}
	if err := s.serverDir().Put(req.ID, rec); err != nil {
		return fmt.Errorf("save server: %w", err)
	}
	s.mu.Lock()
	_, rejoin := s.servers[req.ID]
	s.servers[req.ID] = &rec
	s.mu.Unlock()
	if rejoin {
		log.Warn("process server joined again: its previous certificate is refused from now on")
	}
	log.Info("process server joined", "serial", rec.Serial)
	httpapi.WriteJSON(w, http.StatusOK, api.JoinResponse{
		Certificate: string(certPEM),
		CA:          string(s.o.CAPEM),
		ConfigID:    s.localID(),
		ServerProof: api.ServerProof(s.o.Passphrase, req.Nonce, string(s.o.CAPEM)),
	})
	return nil
}

// joinedServer returns the id of the joined process server whose
// certificate made r.
func (s *Servers) joinedServer(r *http.Request) (string, error) {
	return s.joinedServerAs(r, false)
}

// joinedServerAs is joinedServer; renew also admits the certificate the
// server's last renewal replaced.
func (s *Servers) joinedServerAs(r *http.Request, renew bool) (string, error) {
	const hint = "a process server reports with the certificate 'lifeboat-server init --join' got"
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", httpapi.Errorf(http.StatusUnauthorized, "no client certificate", hint)
	}
	cn, err := s.o.CA.VerifyClient(r.TLS.PeerCertificates)
	if err != nil {
		return "", &httpapi.Error{Status: http.StatusForbidden, Msg: "client certificate not issued by this server's CA", Remedy: hint, Err: err}
	}
	id, ok := strings.CutPrefix(cn, pki.ServerCNPrefix)
	if !ok || api.ValidName(id) != nil {
		return "", httpapi.Errorf(http.StatusForbidden, "certificate names no process server", hint)
	}
	s.mu.Lock()
	rec := s.servers[id]
	s.mu.Unlock()
	if rec == nil {
		return "", httpapi.Errorf(http.StatusForbidden, "process server "+strconv.Quote(id)+" has not joined", "join it with 'lifeboat-server init --join URL --name "+id+"'")
	}
	if serial := r.TLS.PeerCertificates[0].SerialNumber.Text(16); serial != rec.Serial && (!renew || serial != rec.Renewed || rec.Renewed == "") {
		return "", httpapi.Errorf(http.StatusForbidden, "certificate of process server "+strconv.Quote(id)+" retired: it joined again since",
			"use the data directory of its latest join, or join it again")
	}
	return id, nil
}

// Heartbeat handles PUT /v1/servers/heartbeat.
func (s *Servers) Heartbeat(w http.ResponseWriter, r *http.Request) error {
	id, err := s.joinedServer(r)
	if err != nil {
		return err
	}
	var hb api.Heartbeat
	if err := httpapi.DecodeJSON(w, r, 4<<20, &hb); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(hb.Address); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad address "+strconv.Quote(hb.Address), "run the process server with --advertise HOST:PORT")
	}
	beat := serverBeat{at: time.Now().UTC(), addr: hb.Address, roles: hb.Roles, machines: map[string]api.ServedMachine{}}
	for _, m := range hb.Machines {
		if api.ValidName(m.Machine) == nil {
			beat.machines[m.Machine] = m
		}
	}
	s.mu.Lock()
	s.beats[id] = beat
	s.mu.Unlock()
	ans := api.HeartbeatAnswer{ID: id, Machines: []api.Assignment{}, IntervalSeconds: api.DefaultHeartbeatSeconds}
	s.o.Machines.Each(func(name string, m *machines.Record) {
		if m.Assigned != id {
			return
		}
		if sm, ok := beat.machines[name]; ok && sm.LastSeen != nil && sm.LastSeen.After(m.LastSeen) {
			m.LastSeen = *sm.LastSeen
		}
		ans.Machines = append(ans.Machines, api.Assignment{Machine: name, Epoch: m.Epoch, State: m.State,
			Serial: m.Serial, SerialOnly: m.SerialOnly, Policy: m.APIPolicy(name)})
	})
	slices.SortFunc(ans.Machines, func(a, b api.Assignment) int { return strings.Compare(a.Machine, b.Machine) })
	if s.o.Revoked != nil {
		list, err := s.o.Revoked.List()
		if err != nil {
			return err
		}
		if hb.RevokedDigest == pki.ListDigest(list) {
			list = nil // the joined server holds this list already
		}
		for _, e := range list {
			ans.Revoked = append(ans.Revoked, api.RevokedCertificate{Serial: e.Serial, Name: e.Name, Time: e.Time, Reason: e.Reason})
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, ans)
	return nil
}

// serverHealthy reports whether a joined server reported recently.
func (s *Servers) serverHealthy(b serverBeat, now time.Time) bool {
	return !b.at.IsZero() && now.Sub(b.at) <= s.o.HeartbeatTimeout
}

// processServers returns every process server, the local one first.
func (s *Servers) processServers() []api.ProcessServer {
	now := time.Now()
	counts := map[string][]string{}
	s.o.Machines.Each(func(name string, m *machines.Record) {
		if m.Registered != nil || m.Assigned != "" {
			counts[m.Assigned] = append(counts[m.Assigned], name)
		}
	})
	var out []api.ProcessServer
	if s.hasLocalProcess() {
		ps := api.ProcessServer{ID: s.localID(), Address: s.o.Local.Addr(""), Roles: s.o.Roles, Local: true,
			Machines: sorted(counts[""]), Healthy: true, Problems: []string{}}
		out = append(out, ps)
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.servers))
	for id := range s.servers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		rec, b := s.servers[id], s.beats[id]
		joined := rec.Joined
		ps := api.ProcessServer{ID: id, Address: b.addr, Roles: b.roles, Machines: sorted(counts[id]), Joined: &joined,
			Healthy: s.serverHealthy(b, now), Problems: []string{}}
		if ps.Roles == nil {
			ps.Roles = []string{}
		}
		if !b.at.IsZero() {
			t := b.at
			ps.LastHeartbeat = &t
		}
		if !ps.Healthy {
			ps.Problems = append(ps.Problems, s.silentProblem(id, b, now))
		}
		out = append(out, ps)
	}
	s.mu.Unlock()
	return out
}

func sorted(l []string) []string {
	if l == nil {
		return []string{}
	}
	slices.Sort(l)
	return l
}

// silentProblem says that a joined server is not reporting, with the
// remedy. Call with s.mu held.
func (s *Servers) silentProblem(id string, b serverBeat, now time.Time) string {
	if b.at.IsZero() {
		return fmt.Sprintf("process server %s has not reported since the configuration server started: start it ('lifeboat-server run' on its data directory), or move its machines with 'lifeboat move MACHINE --to SERVER'", id)
	}
	return fmt.Sprintf("process server %s (%s) silent for %s: start it again; if it is gone for good, move its machines with 'lifeboat move MACHINE --to SERVER --force' (their disks then resync)",
		id, b.addr, now.Sub(b.at).Round(time.Second))
}

// List handles GET /v1/servers.
func (s *Servers) List(w http.ResponseWriter, r *http.Request) error {
	out := s.processServers()
	if out == nil {
		out = []api.ProcessServer{}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// AssignProcessServer returns the process server of a registering
// machine and its id ("" for the local one): the one it is assigned to
// already, else the healthy one with the fewest machines, the local one
// on a tie.
func (s *Servers) AssignProcessServer(r *http.Request, machine string) (addr, id string, err error) {
	rec, _ := s.o.Machines.Get(machine)
	if rec.Assigned != "" {
		s.mu.Lock()
		b, ok := s.beats[rec.Assigned]
		s.mu.Unlock()
		if ok && b.addr != "" {
			return b.addr, rec.Assigned, nil
		}
		return "", "", httpapi.Errorf(http.StatusServiceUnavailable, fmt.Sprintf("machine %s is assigned to process server %s, which has not reported", machine, rec.Assigned),
			"start that process server, or move the machine with 'lifeboat move "+machine+" --to SERVER' first")
	}
	if rec.Registered != nil && s.hasLocalProcess() {
		// Registered before: stays where its replica's state is.
		addr, err := s.o.Local.RegisterAddr(r)
		return addr, "", err
	}
	best, bestN := "", -1
	if s.hasLocalProcess() {
		best, bestN = "", len(s.processServers()[0].Machines)
	}
	for _, ps := range s.processServers() {
		if ps.Local || !ps.Healthy || ps.Address == "" {
			continue
		}
		if bestN < 0 || len(ps.Machines) < bestN {
			best, bestN = ps.ID, len(ps.Machines)
		}
	}
	if best == "" {
		addr, err := s.o.Local.RegisterAddr(r)
		return addr, "", err
	}
	s.mu.Lock()
	addr = s.beats[best].addr
	s.mu.Unlock()
	return addr, best, nil
}

// AssignedAddr returns the id and address of the process server of a
// machine, for agents that reached the configuration role through r.
func (s *Servers) AssignedAddr(r *http.Request, machine string) (id, addr string) {
	rec, _ := s.o.Machines.Get(machine)
	if rec.Assigned == "" {
		if !s.hasLocalProcess() {
			return "", ""
		}
		host := ""
		if r != nil {
			host = r.Host
		}
		return s.localID(), s.o.Local.Addr(host)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return rec.Assigned, s.beats[rec.Assigned].addr
}

// AssignmentStatus completes a machine's listing with its process server:
// for a machine assigned to a joined server, the disks and last contact
// that server reported, and a problem when it is silent.
func (s *Servers) AssignmentStatus(m *api.Machine, rec machines.Record) {
	m.ProcessServer, m.ProcessAddress = s.AssignedAddr(nil, m.Name)
	if rec.Assigned == "" {
		return
	}
	s.mu.Lock()
	b, known := s.beats[rec.Assigned]
	_, joined := s.servers[rec.Assigned]
	now := time.Now()
	var problem string
	switch {
	case !joined:
		problem = fmt.Sprintf("assigned to process server %s, which is not joined: join it again, or move the machine with 'lifeboat move %s --to SERVER --force'", rec.Assigned, m.Name)
	case !s.serverHealthy(b, now):
		problem = "replication stopped: " + s.silentProblem(rec.Assigned, b, now)
	}
	sm, ok := b.machines[m.Name]
	s.mu.Unlock()
	if problem != "" {
		m.Problems = append(m.Problems, problem)
	}
	if known && ok {
		if len(sm.Disks) > 0 {
			m.Disks = sm.Disks
		}
		m.Problems = append(m.Problems, sm.Problems...)
	}
}

// CheckLocal refuses a machine the configuration server's own process
// role must not serve (being moved, assigned to a joined server, or no
// local process role), naming the one that serves it.
func (s *Servers) CheckLocal(machine string) error {
	rec, _ := s.o.Machines.Get(machine)
	s.mu.Lock()
	moving := s.moving[machine]
	s.mu.Unlock()
	if moving {
		return httpapi.Moving("machine " + machine + " is being moved to another process server")
	}
	if rec.Assigned != "" {
		id, addr := s.AssignedAddr(nil, machine)
		return httpapi.Errorf(http.StatusMisdirectedRequest, fmt.Sprintf("machine %s is assigned to process server %s (%s), not to this one", machine, id, addr),
			"the agent learns its process server from the configuration server within seconds; 'lifeboat machines' shows the assignment")
	}
	if !s.hasLocalProcess() {
		return httpapi.Errorf(http.StatusMisdirectedRequest, "this server runs no process role", "see 'lifeboat machines' for the machine's process server")
	}
	return nil
}

// MoveMachine handles POST /v1/machines/{m}/move.
func (s *Servers) MoveMachine(w http.ResponseWriter, r *http.Request) error {
	m, err := s.o.Machines.Param(r)
	if err != nil {
		return err
	}
	var req api.MoveRequest
	if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	res, err := s.move(r.Context(), m, req)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

// move moves a machine to process server req.To: the old one stops
// accepting the machine's segments and applies every one it acknowledged,
// then the assignment flips (docs/server.md, "Scale-out").
func (s *Servers) move(ctx context.Context, m string, req api.MoveRequest) (api.MoveResult, error) {
	s.moveMu.Lock()
	defer s.moveMu.Unlock()
	rec, _ := s.o.Machines.Get(m)
	if rec.State != "" && rec.State != api.StateProtected {
		return api.MoveResult{}, httpapi.Errorf(http.StatusConflict, fmt.Sprintf("machine %s is %s", m, rec.StateName()), "only a protected machine can move")
	}
	to := req.To
	if to == s.localID() {
		to = ""
	}
	toID := req.To
	if to == "" {
		if !s.hasLocalProcess() {
			return api.MoveResult{}, httpapi.Errorf(http.StatusBadRequest, "the configuration server runs no process role", "'lifeboat servers' lists the process servers")
		}
		toID = s.localID()
	} else {
		s.mu.Lock()
		_, joined := s.servers[to]
		b := s.beats[to]
		s.mu.Unlock()
		if !joined {
			return api.MoveResult{}, httpapi.Errorf(http.StatusNotFound, "unknown process server "+strconv.Quote(req.To), "'lifeboat servers' lists the process servers")
		}
		if !s.serverHealthy(b, time.Now()) || b.addr == "" {
			return api.MoveResult{}, httpapi.Errorf(http.StatusConflict, "process server "+req.To+" is not healthy",
				"start it and wait for 'lifeboat servers' to show it healthy")
		}
	}
	from, fromID := rec.Assigned, rec.Assigned
	if fromID == "" {
		fromID = s.localID()
	}
	if from == to {
		return api.MoveResult{}, httpapi.Errorf(http.StatusConflict, fmt.Sprintf("machine %s is on process server %s already", m, toID), "'lifeboat machines' shows the assignment")
	}
	log := s.log.With(httpapi.LogComponent, "config", httpapi.LogMachine, m)
	// The epoch is durable before the drain: a server drained for it
	// refuses the machine until assigned it with a larger one.
	epoch := rec.Epoch + 1
	if err := s.o.Machines.Update(m, func(mr *machines.Record) { mr.Epoch = epoch }); err != nil {
		return api.MoveResult{}, err
	}
	res := api.MoveResult{Machine: m, From: fromID, To: toID, Epoch: epoch, Drained: []api.DiskState{}, Forced: req.Force}
	dctx, cancel := context.WithTimeout(ctx, s.o.DrainTimeout)
	defer cancel()
	switch {
	case req.Force:
		log.Warn("move forced: the old process server is not drained", "from", fromID, "to", toID)
		if from == "" {
			s.o.Local.Release(m)
		}
	case from == "":
		s.mu.Lock()
		s.moving[m] = true
		s.mu.Unlock()
		ds, err := s.o.Local.Drain(dctx, m)
		if err != nil {
			s.mu.Lock()
			delete(s.moving, m)
			s.mu.Unlock()
			return res, err
		}
		res.Drained = ds
	default:
		ds, err := s.drainRemote(dctx, from, m, api.DrainRequest{Epoch: epoch, To: toID})
		if err != nil {
			return res, err
		}
		res.Drained = ds
	}
	if to == "" {
		s.o.Local.Release(m) // what this server knew of it is stale
	}
	err := s.o.Machines.Update(m, func(mr *machines.Record) { mr.Assigned = to })
	s.mu.Lock()
	delete(s.moving, m)
	s.mu.Unlock()
	if err != nil {
		return res, &httpapi.Error{Status: http.StatusInternalServerError, Msg: "record the move", Remedy: "run the move again", Err: err}
	}
	log.Info("machine moved", "from", fromID, "to", toID, "epoch", epoch)
	return res, nil
}

// drainRemote asks joined process server id to drain a machine.
func (s *Servers) drainRemote(ctx context.Context, id, m string, req api.DrainRequest) ([]api.DiskState, error) {
	s.mu.Lock()
	addr := s.beats[id].addr
	s.mu.Unlock()
	fail := func(err error) error {
		return &httpapi.Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("drain machine %s on process server %s (%s)", m, id, addr),
			Remedy: "the old process server must apply what it acknowledged before the move: start it again and retry; if it is gone for good, move with --force (the disks then resync)", Err: err}
	}
	if addr == "" {
		return nil, fail(errors.New("it has not reported its address"))
	}
	hc, err := s.serverClient()
	if err != nil {
		return nil, fail(err)
	}
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/v1/drain/"+m, bytes.NewReader(body))
	if err != nil {
		return nil, fail(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, fail(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		json.Unmarshal(b, &e)
		if resp.StatusCode == http.StatusConflict && e.Hint != "" {
			// A refusal of the old server (not a failure to reach or
			// drain it): its reason and remedy are the operator's.
			return nil, &httpapi.Error{Status: http.StatusConflict, Msg: fmt.Sprintf("process server %s refuses to drain machine %s: %s", id, m, e.Error), Remedy: e.Hint}
		}
		return nil, fail(&api.StatusError{Status: resp.StatusCode, Message: e.Error, Remedy: e.Hint, Code: e.Code})
	}
	var dr api.DrainResult
	if err := json.Unmarshal(b, &dr); err != nil {
		return nil, fail(err)
	}
	return dr.Disks, nil
}

// serverClient is the configuration server's HTTPS client towards the
// process servers that joined it, with a certificate of its own id.
func (s *Servers) serverClient() (*http.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hc != nil {
		return s.hc, nil
	}
	cert, err := s.o.CA.IssueClientKey(s.localID(), time.Now())
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: s.o.CA.Pool(), Certificates: []tls.Certificate{cert}}
	s.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
	return s.hc, nil
}

// Info handles GET /v1/server: the roles this server runs and whether its
// target storage shares extents.
func (s *Servers) Info(w http.ResponseWriter, r *http.Request) error {
	var ref *bool
	var note string
	if s.o.StoreReflink != nil {
		ref, note = s.o.StoreReflink()
	}
	httpapi.WriteJSON(w, http.StatusOK, api.ServerInfo{Roles: s.o.Roles, StoreReflink: ref, StoreNote: note})
	return nil
}
