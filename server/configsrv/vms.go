package configsrv

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/recovery/boot"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

// VMs are the VMs kept running by boot tests with Keep: /v1/vms. They
// live as long as the server: Close stops them all.
type VMs struct {
	log *slog.Logger
	mu  sync.Mutex
	vms map[string]*keptVM
}

type keptVM struct {
	info    api.VM
	vm      *boot.VM
	tempOut bool // the images are temporary: removed with the VM
}

func newVMs(log *slog.Logger) *VMs { return &VMs{log: log, vms: map[string]*keptVM{}} }

func (v *VMs) add(info api.VM, vm *boot.VM, tempOut bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.vms[info.ID] = &keptVM{info: info, vm: vm, tempOut: tempOut}
	v.log.Warn("boot test: VM kept running", httpapi.LogMachine, info.Machine, "vm", info.ID,
		"console", "socat - UNIX-CONNECT:"+info.ConsoleSocket, "stop", "lifeboat vms stop "+info.ID)
}

// List returns the kept VMs, sorted by id.
func (v *VMs) List() []api.VM {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := []api.VM{}
	for _, k := range v.vms {
		out = append(out, k.info)
	}
	slices.SortFunc(out, func(a, b api.VM) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Stop stops a kept VM and removes its temporary files and images.
func (v *VMs) Stop(id string) error {
	v.mu.Lock()
	k := v.vms[id]
	delete(v.vms, id)
	v.mu.Unlock()
	if k == nil {
		return httpapi.Errorf(http.StatusNotFound, fmt.Sprintf("no kept VM %q", id), "'lifeboat vms' lists the kept VMs")
	}
	err := k.vm.Stop()
	if k.tempOut && k.info.Out != "" {
		err = errors.Join(err, os.RemoveAll(k.info.Out))
	}
	v.log.Info("kept VM stopped", httpapi.LogMachine, k.info.Machine, "vm", id)
	return err
}

// Close stops every kept VM.
func (v *VMs) Close() error {
	var errs []error
	for _, vm := range v.List() {
		errs = append(errs, v.Stop(vm.ID))
	}
	return errors.Join(errs...)
}

// HandleList handles GET /v1/vms.
func (v *VMs) HandleList(w http.ResponseWriter, r *http.Request) error {
	httpapi.WriteJSON(w, http.StatusOK, v.List())
	return nil
}

// HandleStop handles DELETE /v1/vms/{id}.
func (v *VMs) HandleStop(w http.ResponseWriter, r *http.Request) error {
	if err := v.Stop(r.PathValue("id")); err != nil {
		var he *httpapi.Error
		if errors.As(err, &he) {
			return err
		}
		return &httpapi.Error{Status: http.StatusInternalServerError, Msg: "stop VM: " + err.Error(), Remedy: "see the server's log", Err: err}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
