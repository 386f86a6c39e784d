package api

import "time"

// The boot-verified test failover, the kept VMs and the drills
// (docs/boot.md). All are admin endpoints of the configuration role.
const (
	// PathBootTest materializes a machine's disks at a point and boots
	// them in an isolated VM (POST, BootTestRequest → BootTestResult).
	PathBootTest = "/v1/machines/{m}/boot-test"
	// PathVMs lists the VMs kept by --keep (GET, []VM).
	PathVMs = "/v1/vms"
	// PathVM stops a kept VM (DELETE).
	PathVM = "/v1/vms/{id}"
	// PathDrills lists every machine's drill policy and last results
	// (GET, []DrillStatus).
	PathDrills = "/v1/drills"
	// PathDrill reads (GET) or sets (PUT, DrillPolicy) a machine's drill
	// policy; both answer DrillStatus.
	PathDrill = "/v1/machines/{m}/drill"
	// PathDrillRun runs a machine's drill now and waits for it (POST,
	// → DrillStatus).
	PathDrillRun = "/v1/machines/{m}/drill/run"
)

// Networks of a boot-verified test failover.
const (
	// BootNetNone gives the VM no network card (the default).
	BootNetNone = "none"
	// BootNetIsolated gives it a user-mode network with no route out
	// and one TCP port forwarded from 127.0.0.1 on the server.
	BootNetIsolated = "isolated"
)

// Alerts of the drills (Alert.Alert).
const (
	// AlertDrillFailed: the machine's last drill failed.
	AlertDrillFailed = "drill-failed"
	// AlertDrillOverdue: no drill of the machine passed within twice its
	// drill interval.
	AlertDrillOverdue = "drill-overdue"
)

// BootTestRequest asks for a boot-verified test failover. The machine's
// state and its replica are never written.
type BootTestRequest struct {
	// Point is a point id, latest or latest-app.
	Point string `json:"point"`
	// Out is an absolute directory on the server host for the images,
	// which stay there; empty: a temporary directory, removed after.
	Out string `json:"out,omitempty"`
	// Net is BootNetNone ("" too) or BootNetIsolated; GuestPort is the
	// guest's TCP port forwarded with BootNetIsolated (22 when 0).
	Net       string `json:"net,omitempty"`
	GuestPort int    `json:"guest_port,omitempty"`
	// Ready is a regular expression of a ready console (a login prompt
	// when empty).
	Ready string `json:"ready,omitempty"`
	// TimeoutSeconds bounds the boot to ready (10 min under TCG, 5 under
	// KVM when 0).
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
	// Verify is a program on the server host, run after ready with the
	// LIFEBOAT_* environment of docs/boot.md; its exit status decides.
	Verify string `json:"verify,omitempty"`
	// Keep leaves a passing VM running (GET /v1/vms).
	Keep bool `json:"keep,omitempty"`
}

// BootResult is the outcome of a boot-verified test failover or a drill.
type BootResult struct {
	Machine string `json:"machine"`
	Point   Point  `json:"point"`
	// Drill is true for a scheduled (or run-now) drill.
	Drill bool `json:"drill"`
	// Pass is true when the guest reached ready and the verify script,
	// if any, exited 0; Reason says why not.
	Pass   bool   `json:"pass"`
	Reason string `json:"reason,omitempty"`
	// Started is when the command was accepted.
	Started time.Time `json:"started"`
	// The parts: materializing the images, qemu's start to ready (of the
	// bus that counted), the verify script; Total is from the command to
	// the end.
	MaterializeSeconds float64 `json:"materialize_seconds"`
	BootToReadySeconds float64 `json:"boot_to_ready_seconds"`
	VerifySeconds      float64 `json:"verify_seconds"`
	TotalSeconds       float64 `json:"total_seconds"`
	// What was used.
	Firmware string `json:"firmware,omitempty"`
	Bus      string `json:"bus,omitempty"`
	Accel    string `json:"accel,omitempty"`
	Net      string `json:"net"`
	// Priority is the CPU and I/O priority qemu and the verify script ran
	// at.
	Priority string `json:"priority,omitempty"`
	// Buses are the buses tried, in order.
	Buses []string `json:"buses,omitempty"`
	// ConsoleLog is the serial console log kept with the record on the
	// server host; ConsoleTail its last lines.
	ConsoleLog  string `json:"console_log,omitempty"`
	ConsoleTail string `json:"console_tail,omitempty"`
	// Verify, its exit status (-1: not run or killed) and the tail of
	// its output.
	Verify       string `json:"verify,omitempty"`
	VerifyExit   int    `json:"verify_exit"`
	VerifyOutput string `json:"verify_output,omitempty"`
	// Images are the materialized images (removed after unless Out was
	// given).
	Out    string  `json:"out,omitempty"`
	Images []Image `json:"images,omitempty"`
	// VM is the kept VM (Keep and Pass).
	VM *VM `json:"vm,omitempty"`
}

// BootTestResult answers PathBootTest.
type BootTestResult = BootResult

// VM is a VM left running by a boot-verified test failover with Keep.
type VM struct {
	ID      string    `json:"id"`
	Machine string    `json:"machine"`
	Point   string    `json:"point"`
	Started time.Time `json:"started"`
	Pid     int       `json:"pid"`
	// ConsoleSocket is a unix socket of the serial console on the server
	// host (socat - UNIX-CONNECT:PATH); ConsoleLog the log it appends to.
	ConsoleSocket string `json:"console_socket"`
	ConsoleLog    string `json:"console_log"`
	// HostPort is the port on 127.0.0.1 of the server host forwarded to
	// the guest (0 without network).
	HostPort int `json:"host_port,omitempty"`
	// Out holds the images the VM boots from (through overlays).
	Out string `json:"out,omitempty"`
}

// DrillPolicy is a machine's drill schedule. IntervalSeconds 0 turns the
// drills off (the default).
type DrillPolicy struct {
	IntervalSeconds float64 `json:"interval_seconds"`
	// Verify is a program on the server host (see BootTestRequest).
	Verify string `json:"verify,omitempty"`
	// Ready is the ready console pattern (a login prompt when empty).
	Ready string `json:"ready,omitempty"`
	// TimeoutSeconds bounds the boot to ready (see BootTestRequest).
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
	// Net and GuestPort as in BootTestRequest.
	Net       string `json:"net,omitempty"`
	GuestPort int    `json:"guest_port,omitempty"`
}

// DrillStatus is a machine's drill policy and its last results.
type DrillStatus struct {
	Machine string      `json:"machine"`
	Policy  DrillPolicy `json:"policy"`
	// Since is when the policy was set.
	Since *time.Time `json:"since,omitempty"`
	// Running is true while a drill of the machine runs.
	Running bool `json:"running"`
	// Next is when the next drill is due (drills on).
	Next *time.Time `json:"next,omitempty"`
	// LastDrill is the last drill, LastPass the time of the last passing
	// one; LastBootTest is the last boot-verified test failover run by
	// hand.
	LastDrill    *BootResult `json:"last_drill,omitempty"`
	LastPass     *time.Time  `json:"last_pass,omitempty"`
	LastBootTest *BootResult `json:"last_boot_test,omitempty"`
}
