package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// 'lifeboat machines reregister' and 'revoke' against a real server.
func TestCLIReregisterRevoke(t *testing.T) {
	dir := servertest.Init(t)
	srv := servertest.Start(t, servertest.Config(t, dir))
	servertest.Register(t, srv, dir, "web1")
	env := map[string]string{"LIFEBOAT_DATA": dir}
	if out := mustRun(t, env, "machines", "reregister", "web1"); !strings.Contains(out, "web1 may register again once") {
		t.Errorf("reregister:\n%s", out)
	}
	var ans api.RevokeAnswer
	if err := json.Unmarshal([]byte(mustRun(t, env, "machines", "revoke", "web1", "--json")), &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Machine != "web1" || len(ans.Serials) != 1 {
		t.Errorf("revoke --json: %+v", ans)
	}
	_, errOut, err := run(t, env, "machines", "revoke", "nobody")
	if err == nil || !strings.Contains(errOut, "unknown machine") {
		t.Errorf("revoke of an unknown machine: %v\n%s", err, errOut)
	}
}
