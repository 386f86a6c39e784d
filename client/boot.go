package client

import (
	"context"
	"net/http"

	"github.com/lifeboat-dr/lifeboat/api"
)

// BootTest materializes a machine's disks at a point on the server host
// and boots them in an isolated VM (docs/boot.md); it waits for the end.
func (a *Admin) BootTest(ctx context.Context, machine string, req api.BootTestRequest) (api.BootResult, error) {
	var res api.BootResult
	err := doJSON(ctx, a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/boot-test", req, &res)
	return res, err
}

// VMs lists the VMs kept running by boot tests.
func (a *Admin) VMs(ctx context.Context) ([]api.VM, error) {
	var vs []api.VM
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathVMs, nil, &vs)
	return vs, err
}

// StopVM stops a kept VM and removes its temporary files.
func (a *Admin) StopVM(ctx context.Context, id string) error {
	return doJSON(ctx, a.hc, http.MethodDelete, a.base+"/v1/vms/"+escape(id), nil, nil)
}

// Drills lists every machine's drill policy and last results.
func (a *Admin) Drills(ctx context.Context) ([]api.DrillStatus, error) {
	var ds []api.DrillStatus
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+api.PathDrills, nil, &ds)
	return ds, err
}

// Drill returns a machine's drill policy and last results.
func (a *Admin) Drill(ctx context.Context, machine string) (api.DrillStatus, error) {
	var d api.DrillStatus
	err := doJSON(ctx, a.hc, http.MethodGet, a.base+"/v1/machines/"+escape(machine)+"/drill", nil, &d)
	return d, err
}

// SetDrill sets a machine's drill policy.
func (a *Admin) SetDrill(ctx context.Context, machine string, p api.DrillPolicy) (api.DrillStatus, error) {
	var d api.DrillStatus
	err := doJSON(ctx, a.hc, http.MethodPut, a.base+"/v1/machines/"+escape(machine)+"/drill", p, &d)
	return d, err
}

// RunDrill runs a machine's drill now and waits for it.
func (a *Admin) RunDrill(ctx context.Context, machine string) (api.DrillStatus, error) {
	var d api.DrillStatus
	err := doJSON(ctx, a.hc, http.MethodPost, a.base+"/v1/machines/"+escape(machine)+"/drill/run", struct{}{}, &d)
	return d, err
}
