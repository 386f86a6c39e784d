package sysservice

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/template"

	"github.com/kardianos/service"

	"github.com/lifeboat-dr/lifeboat/internal/cmdline"
)

// Spec describes one program's service.
type Spec struct {
	Name        string // service and unit name: "lifeboat-agent"
	DisplayName string
	Description string
	// Config is the default configuration file of the service.
	Config string
	// Executable is the program the service runs (default: this one).
	Executable string
	// Check says whether the configuration file is complete enough to
	// start (nil: always). Its error says what to set.
	Check func(configFile string) error
	// Uninstalled runs after the service is stopped and unregistered
	// (the agent releases its tracker's pins there).
	Uninstalled func(configFile string, out io.Writer) error
	// After lists systemd units to start after (network-online.target).
	After []string
	// Stop is how long the program may take to stop (systemd
	// TimeoutStopSec), in seconds.
	StopSeconds int
}

// Verbs are the commands Command handles.
var Verbs = []string{"install", "uninstall", "start", "stop", "restart", "status", "check-config"}

// IsVerb reports whether name is one of Verbs.
func IsVerb(name string) bool {
	for _, v := range Verbs {
		if v == name {
			return true
		}
	}
	return false
}

// Inits are the values of --init.
const (
	InitAuto    = "auto"
	InitSystemd = "systemd"
	InitSysV    = "sysv"
)

// ErrNotConfigured is returned by start when the configuration is not
// complete; exit status 6 (LSB: not configured).
var ErrNotConfigured = errors.New("not configured")

// ErrNotRunning is returned by status when the service is installed but
// stopped (exit status 3, LSB), ErrNotInstalled when it is not installed
// (exit status 4).
var (
	ErrNotRunning   = errors.New("not running")
	ErrNotInstalled = errors.New("not installed")
)

// ExitCode maps an error of Command to an LSB init-script exit status.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNotRunning):
		return 3
	case errors.Is(err, ErrNotInstalled):
		return 4
	case errors.Is(err, ErrNotConfigured):
		return 6
	default:
		return 1
	}
}

// Command runs one verb with its flags.
func Command(verb string, args []string, spec Spec, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", spec.Config, "configuration `FILE` the service runs with")
	initSys := fs.String("init", InitAuto, "init system: auto, systemd or sysv (Linux)")
	print := false
	if verb == "install" {
		fs.BoolVar(&print, "print", false, "print the systemd unit (or init script) that install would write, and do nothing")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s %s [--config FILE] [--init auto|systemd|sysv]\n", spec.Name, verb)
		cmdline.PrintDefaults(fs)
	}
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cmdline.Usagef(verb, "%s: unexpected argument %q", verb, fs.Arg(0))
	}
	if verb == "check-config" {
		return check(spec, *cfg, stdout)
	}
	if !filepath.IsAbs(*cfg) {
		abs, err := filepath.Abs(*cfg)
		if err != nil {
			return err
		}
		*cfg = abs
	}
	m, err := newManager(spec, *cfg, *initSys)
	if err != nil {
		return err
	}
	if print {
		text, err := m.script()
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, text)
		return err
	}
	switch verb {
	case "install":
		return m.install(stdout)
	case "uninstall":
		return m.uninstall(stdout)
	case "start":
		return m.start(stdout)
	case "stop":
		return m.stop(stdout)
	case "restart":
		if spec.Check != nil {
			if err := spec.Check(m.cfg); err != nil {
				return fmt.Errorf("restart: %w: %s: %v (the running service was left alone)", ErrNotConfigured, m.cfg, err)
			}
		}
		if err := m.stop(stdout); err != nil {
			return err
		}
		return m.start(stdout)
	case "status":
		return m.status(stdout)
	}
	return fmt.Errorf("unknown service command %q", verb)
}

func check(spec Spec, cfg string, out io.Writer) error {
	if spec.Check == nil {
		fmt.Fprintf(out, "%s: configuration %s is complete\n", spec.Name, cfg)
		return nil
	}
	if err := spec.Check(cfg); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNotConfigured, cfg, err)
	}
	fmt.Fprintf(out, "%s: configuration %s is complete\n", spec.Name, cfg)
	return nil
}

type manager struct {
	spec    Spec
	cfg     string
	exe     string
	svc     service.Service
	system  string // kardianos' platform name: linux-systemd, unix-systemv, windows-service
	offline bool   // systemd chosen, but not PID 1
}

// program satisfies service.Interface for the control verbs; the program
// itself runs through Run.
type program struct{}

func (program) Start(service.Service) error { return nil }
func (program) Stop(service.Service) error  { return nil }

func newManager(spec Spec, cfg, initSys string) (*manager, error) {
	exe := spec.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find this program: %w", err)
		}
		if p, err := filepath.EvalSymlinks(exe); err == nil {
			exe = p
		}
	}
	m := &manager{spec: spec, cfg: cfg, exe: exe}
	sc := &service.Config{
		Name:        spec.Name,
		DisplayName: spec.DisplayName,
		Description: spec.Description,
		Executable:  exe,
		Arguments:   []string{"run", "--config", cfg},
		Option:      service.KeyValue{},
	}
	var sys service.System
	switch initSys {
	case InitAuto:
		sys = service.ChosenSystem()
		if sys == nil {
			return nil, fmt.Errorf("no init system found on %s: give --init systemd or --init sysv", runtime.GOOS)
		}
	case InitSystemd, InitSysV:
		want := map[string]string{InitSystemd: "linux-systemd", InitSysV: "unix-systemv"}[initSys]
		for _, s := range service.AvailableSystems() {
			if s.String() == want {
				sys = s
			}
		}
		if sys == nil {
			return nil, fmt.Errorf("--init %s: not available on %s", initSys, runtime.GOOS)
		}
	default:
		return nil, fmt.Errorf("--init %q: use auto, systemd or sysv", initSys)
	}
	m.system = sys.String()
	if m.system == "linux-systemd" {
		unit, err := m.unit()
		if err != nil {
			return nil, err
		}
		sc.Option["SystemdScript"] = unit
		if !systemdRunning() {
			// systemctl then edits the unit's symlinks itself, and
			// refuses start and stop with a clear message.
			m.offline = true
			os.Setenv("SYSTEMD_OFFLINE", "1")
		}
	}
	svc, err := sys.New(program{}, sc)
	if err != nil {
		return nil, fmt.Errorf("%s service: %w", m.system, err)
	}
	m.svc = svc
	return m, nil
}

// systemdRunning reports whether systemd is the running init (the test
// sd_booted(3) makes).
func systemdRunning() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}

const unitTemplate = `# Written by '{{.Name}} install'; '{{.Name}} uninstall' removes it.
# The settings are in {{.Config}} (documented in /usr/share/doc/{{.Name}}).
[Unit]
Description={{.Description}}
Documentation=https://github.com/lifeboat-dr/lifeboat
{{- range .After}}
After={{.}}
Wants={{.}}
{{- end}}
StartLimitIntervalSec=300
StartLimitBurst=5
ConditionPathExists={{.Config}}

[Service]
Type=simple
ExecStart={{.Exec}} run --config {{.Config}}
Restart=on-failure
RestartSec=10
TimeoutStopSec={{.Stop}}
KillMode=mixed
LimitMEMLOCK=infinity

[Install]
WantedBy=multi-user.target
`

// unit renders the systemd unit.
func (m *manager) unit() (string, error) {
	for _, s := range []string{m.exe, m.cfg} {
		if strings.ContainsAny(s, " \t\n\"'\\%$") {
			return "", fmt.Errorf("path %q: a systemd unit needs a path without spaces, quotes, %%, $ or backslashes", s)
		}
	}
	stop := m.spec.StopSeconds
	if stop <= 0 {
		stop = 90
	}
	var b bytes.Buffer
	err := template.Must(template.New("unit").Parse(unitTemplate)).Execute(&b, map[string]any{
		"Name": m.spec.Name, "Description": m.spec.Description, "After": m.spec.After,
		"Config": m.cfg, "Exec": m.exe, "Stop": stop,
	})
	return b.String(), err
}

// script returns what install writes: the unit for systemd; for the other
// init systems kardianos' own template, which is not printable.
func (m *manager) script() (string, error) {
	if m.system == "linux-systemd" {
		return m.unit()
	}
	return "", fmt.Errorf("install --print: only the systemd unit can be printed (this is %s); give --init systemd", m.system)
}

// Path is where install registers the service, for messages.
func (m *manager) path() string {
	switch m.system {
	case "linux-systemd":
		return "/etc/systemd/system/" + m.spec.Name + ".service"
	case "unix-systemv":
		return "/etc/init.d/" + m.spec.Name
	default:
		return m.system + " " + m.spec.Name
	}
}

func (m *manager) installed() bool {
	if runtime.GOOS != "linux" {
		_, err := m.svc.Status()
		return !errors.Is(err, service.ErrNotInstalled)
	}
	_, err := os.Stat(m.path())
	return err == nil || m.packaged() != ""
}

// packaged returns the unit file a .deb or .rpm installed (in the
// distribution's unit directory), or "": start, stop and status work on
// it, install leaves it to the package.
func (m *manager) packaged() string {
	if m.system != "linux-systemd" {
		return ""
	}
	for _, dir := range []string{"/lib/systemd/system", "/usr/lib/systemd/system"} {
		p := dir + "/" + m.spec.Name + ".service"
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// install registers the service; on a service already registered it
// writes the registration again (an upgrade brings a new unit) and keeps
// it running or stopped as it was.
func (m *manager) install(out io.Writer) error {
	if p := m.packaged(); p != "" {
		fmt.Fprintf(out, "%s: the package installed the unit %s: enable it with 'systemctl enable %s' (not changed here)\n", m.spec.Name, p, m.spec.Name)
		return nil
	}
	if m.installed() {
		if err := m.unregister(); err != nil {
			return fmt.Errorf("install: replace the registration: %w", err)
		}
	}
	if err := m.svc.Install(); err != nil {
		return fmt.Errorf("install %s service: %w", m.system, err)
	}
	fmt.Fprintf(out, "%s: installed as a %s service (%s), running %s run --config %s\n", m.spec.Name, m.system, m.path(), m.exe, m.cfg)
	if m.spec.Check != nil {
		if err := m.spec.Check(m.cfg); err != nil {
			fmt.Fprintf(out, "%s: not started: %s: %v; then run '%s start'\n", m.spec.Name, m.cfg, err, m.spec.Name)
			return nil
		}
	}
	fmt.Fprintf(out, "%s: start it with '%s start'\n", m.spec.Name, m.spec.Name)
	return nil
}

// unregister removes the registration only.
func (m *manager) unregister() error {
	if err := m.svc.Uninstall(); err != nil {
		return err
	}
	if m.system == "unix-systemv" {
		// kardianos' System V uninstall leaves the rc.d links.
		for _, l := range sysvLinks(m.spec.Name) {
			if t, err := os.Readlink(l); err == nil && t == "/etc/init.d/"+m.spec.Name {
				if err := os.Remove(l); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func sysvLinks(name string) []string {
	var ls []string
	for _, r := range "2345" {
		ls = append(ls, fmt.Sprintf("/etc/rc%c.d/S50%s", r, name))
	}
	for _, r := range "016" {
		ls = append(ls, fmt.Sprintf("/etc/rc%c.d/K02%s", r, name))
	}
	return ls
}

// uninstall stops the service, runs the Uninstalled hook and removes the
// registration.
func (m *manager) uninstall(out io.Writer) error {
	if !m.installed() {
		fmt.Fprintf(out, "%s: not installed as a %s service; nothing to do\n", m.spec.Name, m.system)
		return nil
	}
	if st, err := m.svc.Status(); err == nil && st == service.StatusRunning {
		if err := m.stop(out); err != nil {
			return fmt.Errorf("uninstall: %w", err)
		}
	}
	if err := m.unregister(); err != nil {
		return fmt.Errorf("uninstall %s service: %w", m.system, err)
	}
	if m.system == "unix-systemv" {
		// The init script's logs and pid file.
		os.Remove("/var/run/" + m.spec.Name + ".pid")
	}
	fmt.Fprintf(out, "%s: uninstalled (%s removed)\n", m.spec.Name, m.path())
	if m.spec.Uninstalled != nil {
		return m.spec.Uninstalled(m.cfg, out)
	}
	return nil
}

func (m *manager) start(out io.Writer) error {
	if !m.installed() {
		return fmt.Errorf("start: %w: run '%s install' first", ErrNotInstalled, m.spec.Name)
	}
	if m.spec.Check != nil {
		if err := m.spec.Check(m.cfg); err != nil {
			return fmt.Errorf("start: %w: %s: %v", ErrNotConfigured, m.cfg, err)
		}
	}
	if m.offline {
		return fmt.Errorf("start: systemd is not running on this machine (no /run/systemd/system): the unit %s is enabled and starts at boot; or install with --init sysv", m.path())
	}
	if err := m.svc.Start(); err != nil {
		return fmt.Errorf("start %s: %w", m.spec.Name, err)
	}
	fmt.Fprintf(out, "%s: started\n", m.spec.Name)
	return nil
}

func (m *manager) stop(out io.Writer) error {
	if !m.installed() {
		return fmt.Errorf("stop: %w", ErrNotInstalled)
	}
	if m.offline {
		fmt.Fprintf(out, "%s: systemd is not running: nothing to stop\n", m.spec.Name)
		return nil
	}
	if st, err := m.svc.Status(); err == nil && st == service.StatusStopped {
		fmt.Fprintf(out, "%s: already stopped\n", m.spec.Name)
		return nil
	}
	if err := m.svc.Stop(); err != nil {
		return fmt.Errorf("stop %s: %w", m.spec.Name, err)
	}
	fmt.Fprintf(out, "%s: stopped\n", m.spec.Name)
	return nil
}

func (m *manager) status(out io.Writer) error {
	if !m.installed() {
		fmt.Fprintf(out, "%s: not installed\n", m.spec.Name)
		return fmt.Errorf("status: %w: run '%s install'", ErrNotInstalled, m.spec.Name)
	}
	if m.offline {
		fmt.Fprintf(out, "%s: installed (%s), systemd not running here\n", m.spec.Name, m.path())
		return fmt.Errorf("status: %w", ErrNotRunning)
	}
	st, err := m.svc.Status()
	switch {
	case err == nil && st == service.StatusRunning:
		fmt.Fprintf(out, "%s: running (%s service, %s)\n", m.spec.Name, m.system, m.path())
		return nil
	case err == nil && st == service.StatusStopped, err != nil && m.system == "unix-systemv":
		// The init script's status exits 1 when the program is stopped.
		fmt.Fprintf(out, "%s: stopped (%s service, %s)\n", m.spec.Name, m.system, m.path())
		return fmt.Errorf("status: %w: '%s start' starts it", ErrNotRunning, m.spec.Name)
	default:
		fmt.Fprintf(out, "%s: stopped or failed (%s service, %s): %v\n", m.spec.Name, m.system, m.path(), err)
		return fmt.Errorf("status: %w: see the service's log", ErrNotRunning)
	}
}

// Run runs fn as the program of the service. Under the Windows service
// manager it answers its start and stop requests; everywhere else it just
// calls fn (systemd and init scripts stop a program with SIGTERM, which
// the caller's ctx already follows).
func Run(ctx context.Context, name string, fn func(context.Context) error) error {
	if runtime.GOOS != "windows" || service.Interactive() {
		return fn(ctx)
	}
	p := &managed{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s, err := service.New(p, &service.Config{Name: name})
	if err != nil {
		return fmt.Errorf("windows service: %w", err)
	}
	if err := s.Run(); err != nil {
		return err
	}
	return p.err
}

type managed struct {
	ctx    context.Context
	fn     func(context.Context) error
	cancel context.CancelFunc
	done   chan error
	err    error
}

func (p *managed) Start(service.Service) error {
	ctx, cancel := context.WithCancel(p.ctx)
	p.cancel = cancel
	go func() { p.done <- p.fn(ctx) }()
	return nil
}

func (p *managed) Stop(service.Service) error {
	p.cancel()
	p.err = <-p.done
	return nil
}
