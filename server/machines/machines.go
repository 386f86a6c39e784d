package machines

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/recdir"
	"github.com/lifeboat-dr/lifeboat/store"
)

// Record is DataDir/machines/<name>.json, and what is known of the
// machine in memory.
type Record struct {
	Name       string         `json:"name"`
	Registered *time.Time     `json:"registered,omitempty"`
	Serial     string         `json:"serial,omitempty"`
	Disks      []api.DiskSpec `json:"disks,omitempty"`
	// Policy is the machine's retention policy; nil means
	// store.DefaultRetention.
	Policy *store.Retention `json:"policy,omitempty"`
	// State is "" (protected), api.StateFailedOver,
	// api.StateCommitted or api.StateFailedBack.
	State string `json:"state,omitempty"`
	// Failover is the last real failover, while failed over or
	// committed.
	Failover *api.FailoverRecord `json:"failover,omitempty"`
	// Committed is when the failover was committed.
	Committed *time.Time `json:"committed,omitempty"`
	// Failback is the completed failback, once failed back.
	Failback *api.FailbackStatus `json:"failback,omitempty"`
	// FailedBack is when the failback completed.
	FailedBack *time.Time `json:"failed_back,omitempty"`
	// SerialOnly: the process role accepts only the certificate Serial
	// (set when a committed machine registers again, so that the old
	// source's certificate stays refused).
	SerialOnly bool `json:"serial_only,omitempty"`
	// Assigned is the id of the joined process server the machine is
	// assigned to; "" means this server's own process role. Epoch grows
	// with every move.
	Assigned string `json:"assigned,omitempty"`
	Epoch    uint64 `json:"epoch,omitempty"`
	// Reregister is until when the operator allows the machine's name to
	// be registered again ('lifeboat machines reregister'); Revoked is
	// when its certificates were revoked (docs/security.md).
	Reregister *time.Time `json:"reregister,omitempty"`
	Revoked    *time.Time `json:"revoked,omitempty"`

	// LastSeen is the last request of the machine (in memory only).
	LastSeen time.Time `json:"-"`
	// LastPrune is the outcome of the last prune (in memory only).
	LastPrune *api.PruneStatus `json:"-"`
}

// StateName returns the machine's state as the API names it.
func (m *Record) StateName() string {
	if m.State == "" {
		return api.StateProtected
	}
	return m.State
}

// Retention returns the machine's retention policy.
// APIPolicy is the record's retention policy as the API shows it for
// machine name.
func (m *Record) APIPolicy(name string) api.Policy {
	r := m.Retention()
	return api.Policy{Machine: name, WindowSeconds: int64(r.Window / time.Second), KeepAllSeconds: int64(r.KeepAll / time.Second),
		ThinSeconds: int64(r.Thin / time.Second), Default: m.Policy == nil}
}

func (m *Record) Retention() store.Retention {
	if m.Policy != nil {
		return *m.Policy
	}
	return store.DefaultRetention
}

// Registry is the records of every machine known, loaded from a
// directory.
type Registry struct {
	dir *recdir.Dir[Record]

	mu sync.Mutex
	m  map[string]*Record
}

// Open loads the records of dir (DataDir/machines); a missing directory
// holds none.
func Open(dir string) (*Registry, error) {
	r := &Registry{dir: recdir.New[Record](dir, api.ValidName), m: map[string]*Record{}}
	recs, err := r.dir.List()
	if err != nil {
		return nil, fmt.Errorf("load machines: %w", err)
	}
	for _, rec := range recs {
		m := rec.Value
		m.Name = rec.Name
		r.m[rec.Name] = &m
	}
	return r, nil
}

// Update changes the record of a machine and writes it.
func (r *Registry) Update(name string, f func(m *Record)) error {
	return r.UpdateErr(name, func(m *Record) error { f(m); return nil })
}

// UpdateErr changes the record of a machine and writes it, unless f
// returns an error: then nothing changes and that error is returned. f
// must replace pointer fields, never change what they point to.
func (r *Registry) UpdateErr(name string, f func(m *Record) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m[name]
	if m == nil {
		m = &Record{Name: name}
	}
	c := *m
	c.Disks = slices.Clone(m.Disks)
	if err := f(&c); err != nil {
		return err
	}
	if err := r.dir.Put(name, c); err != nil {
		return fmt.Errorf("save machine: %w", err)
	}
	r.m[name] = &c
	return nil
}

// Touch changes what is known of a machine in memory only (its record
// is made if missing); f must not block.
func (r *Registry) Touch(name string, f func(m *Record)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m[name]
	if m == nil {
		m = &Record{Name: name}
		r.m[name] = m
	}
	f(m)
}

// Seen notes a request of a machine.
func (r *Registry) Seen(name string) {
	r.Touch(name, func(m *Record) { m.LastSeen = time.Now().UTC() })
}

// Get returns a copy of the record of a machine, and whether it is
// known.
func (r *Registry) Get(name string) (Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m[name]
	if m == nil {
		return Record{Name: name}, false
	}
	c := *m
	c.Disks = slices.Clone(m.Disks)
	return c, true
}

// Each calls f with every record, in no order, under the registry's
// lock: f may change what is kept in memory only, and must not block.
func (r *Registry) Each(f func(name string, m *Record)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, m := range r.m {
		f(n, m)
	}
}
