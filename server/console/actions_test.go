package console

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lifeboat-dr/lifeboat/api"
)

// TestDrillAndBookmarkActions: a drill run whose boot did not pass is
// audited as failed with the reason, though the API answered 200; a
// bookmark passes its request through; a viewer may do neither.
func TestDrillAndBookmarkActions(t *testing.T) {
	e := newEnv(t, Options{})
	pw := e.addUser("olga", api.RoleOperator)
	vpw := e.addUser("vera", api.RoleViewer)
	hc := e.browser()
	s, _ := e.login(hc, "olga", pw)
	if resp, b := e.do(hc, "POST", "/ui/api/machines/web1/drill/run", s.CSRF, struct{}{}); resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "login:") {
		t.Fatalf("drill run: %d %s", resp.StatusCode, b)
	}
	if got := e.auditResults("drill-run"); len(got) != 2 || got[0] != "olga started" || !strings.HasPrefix(got[1], `olga failed: the boot did not pass: the console did not match "login:"`) {
		t.Fatalf("drill audited as %q", got)
	}
	if resp, b := e.do(hc, "POST", "/ui/api/machines/web1/bookmark", s.CSRF, api.BookmarkRequest{App: true}); resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"kind": "app"`) {
		t.Fatalf("bookmark: %d %s", resp.StatusCode, b)
	}
	if got := e.auditResults("bookmark"); len(got) != 2 || got[1] != "olga ok" {
		t.Fatalf("bookmark audited as %q", got)
	}
	vc := e.browser()
	vs, _ := e.login(vc, "vera", vpw)
	for _, path := range []string{"/ui/api/machines/web1/bookmark", "/ui/api/machines/web1/drill/run", "/ui/api/machines/web1/boot-test"} {
		if resp, _ := e.do(vc, "POST", path, vs.CSRF, struct{}{}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer's %s: %d, want 403", path, resp.StatusCode)
		}
	}
}
