package mastertarget

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// On a system other than Linux the role refuses to start, with a typed
// error whose hint says where to run it.
func TestRefusedOffLinux(t *testing.T) {
	defer func(g string) { goos = g }(goos)
	goos = "windows"
	if Supported() {
		t.Fatal("supported on windows")
	}
	mt, err := New(Options{})
	var ue *UnsupportedError
	if mt != nil || !errors.As(err, &ue) || ue.GOOS != "windows" {
		t.Fatalf("New on windows: %v, %v", mt, err)
	}
	if h := api.Hint(err); !strings.Contains(h, "needs Linux: run it on a Linux server") {
		t.Errorf("hint %q", h)
	}
	if strings.Contains(err.Error(), "Linux server") {
		t.Errorf("hint inside Error(): %q", err.Error())
	}
}

type oneMachine struct{ m Machine }

func (o oneMachine) MachineParam(r *http.Request) (string, error) { return r.PathValue("m"), nil }
func (o oneMachine) FailbackMachine(string) Machine               { return o.m }
func (o oneMachine) SetFailedBack(string, api.FailbackStatus, time.Time) error {
	return errors.New("not expected")
}

// Without the role, a failback cannot start but the one on record shows.
func TestAPIWithoutRole(t *testing.T) {
	rec := &api.FailbackStatus{Machine: "web1", Phase: api.FailbackDone}
	a := &API{Machines: oneMachine{Machine{State: api.StateFailedBack, Failback: rec}}}
	r := httptest.NewRequest("POST", "/v1/machines/web1/failback", strings.NewReader(`{}`))
	r.SetPathValue("m", "web1")
	var e *httpapi.Error
	if err := a.Start(httptest.NewRecorder(), r); !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Remedy, "--roles config,mastertarget") {
		t.Fatalf("start without the role: %v", err)
	}
	st := a.Current("web1")
	if st == nil || st.Phase != api.FailbackDone || st.State != api.StateFailedBack {
		t.Fatalf("failback on record: %+v", st)
	}
}
