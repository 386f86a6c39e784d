package process

import (
	"net/http"

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
// another one are refused until they would be durable (409, code
// "superseded"). The live agent's own uploads carry the session that
// asked and pass; a request without a session is not fenced.

// fence makes session the disk's agent session. It runs under commit, so
// that a commit under way either ends first (the answer's next sequence
// number counts it) or sees the new session and refuses.
func (d *diskState) fence(session string) {
	d.commit.Lock()
	defer d.commit.Unlock()
	d.mu.Lock()
	d.session = session
	d.mu.Unlock()
}

// superseded refuses an upload of a session other than the one that last
// asked the disk's state.
func (d *diskState) superseded(session string) error {
	d.mu.Lock()
	cur := d.session
	d.mu.Unlock()
	if session == "" || cur == "" || session == cur {
		return nil
	}
	return &httpapi.Error{Status: http.StatusConflict, Code: api.CodeSuperseded,
		Msg:    "upload of an agent process of this machine that a later one superseded (it asked where the journal of " + d.name + " stands since)",
		Remedy: "nothing to do after a restart of the agent: the new process goes on; if two agents run with this machine's certificate, stop one"}
}
