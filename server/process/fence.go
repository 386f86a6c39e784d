package process

import (
	"net/http"
	"slices"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// An agent killed (kill -9, an OOM kill) while it uploads a segment
// restarts and asks where each disk's journal stands (GET disk state):
// its segments were in memory, so it goes on from the server's next
// sequence number with what it reads again. The dead process's last
// upload may still be on its way (in socket buffers, being received or
// synced to the cache). Were it to become durable after that answer, the
// new process's segment under the same number would differ from it: a
// conflict, raised as one, and a resync of the whole disk. So the answer
// fences the disk: every request names its agent process
// (api.HeaderAgentSession) and, once a process has asked, the uploads of
// the sessions seen before are refused until they would be durable (409,
// code "superseded"). The live agent's own uploads carry the session that
// asked, or one not seen before the asking, and pass; a request without a
// session is not fenced.

// maxRetired bounds the sessions a disk remembers as superseded: one per
// agent process that ever sent to it since the server started; the oldest
// are forgotten first.
const maxRetired = 64

// fence retires every session seen on the disk but session (the one that
// asks its state). It runs under commit, so that a commit under way
// either ends first (the answer's next sequence number counts it) or sees
// its session retired and refuses. A session not seen yet is not retired:
// an agent that resumes from its own spool without asking (it knows where
// it stands) is the live one.
func (d *diskState) fence(session string) {
	if session == "" {
		return
	}
	d.commit.Lock()
	defer d.commit.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.sessions {
		if s != session {
			d.retired = append(d.retired, s)
		}
	}
	if n := len(d.retired) - maxRetired; n > 0 {
		d.retired = append(d.retired[:0], d.retired[n:]...)
	}
	d.sessions = map[string]bool{session: true}
}

// superseded refuses an upload of a session that a later one's asking of
// the disk's state retired, and notes any other session as seen.
func (d *diskState) superseded(session string) error {
	if session == "" {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !slices.Contains(d.retired, session) {
		if d.sessions == nil {
			d.sessions = map[string]bool{}
		}
		d.sessions[session] = true
		return nil
	}
	return &httpapi.Error{Status: http.StatusConflict, Code: api.CodeSuperseded,
		Msg:    "upload of an agent process of this machine that a later one superseded (it asked where the journal of " + d.name + " stands since)",
		Remedy: "nothing to do after a restart of the agent: the new process goes on; if two agents run with this machine's certificate, stop one"}
}
