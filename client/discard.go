package client

import (
	"context"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
)

// Discard drops segment seq of a machine's disk, whose apply keeps
// failing, with the later segments not applied; the agent then resyncs the
// disk (POST api.PathDiscard).
func (a *Admin) Discard(ctx context.Context, machine, disk string, seq uint64) (api.DiscardResult, error) {
	var out api.DiscardResult
	err := doJSON(ctx, a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/disks/"+escape(disk)+"/discard", api.DiscardRequest{Seq: seq}, &out)
	return out, err
}
