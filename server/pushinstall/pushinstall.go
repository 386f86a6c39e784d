package pushinstall

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/internal/sshx"
)

// Paths on the host (those of the agent package).
const (
	ConfigFile  = "/etc/lifeboat/agent.toml"
	TokenFile   = "/etc/lifeboat/registration-token"
	AgentBin    = "/usr/bin/lifeboat-agent"
	PackageName = "lifeboat-agent"
)

// Names of the steps, in order.
const (
	StepConnect  = "connect"
	StepPrivs    = "check-root"
	StepHost     = "check-host"
	StepSpace    = "check-space"
	StepCopy     = "copy-package"
	StepInstall  = "install-package"
	StepToken    = "issue-token"
	StepConfig   = "write-config"
	StepStart    = "start-agent"
	StepRegister = "wait-registration"
)

// Kinds of failure (Error.Kind, Step.Kind), besides those of sshx.
const (
	KindNoRoot         = "no-root"
	KindNoSpace        = "no-space"
	KindPackageMissing = "package-missing"
	KindPackageType    = "package-type"
	KindInstall        = "install-failed"
	KindStart          = "start-failed"
	KindRegister       = "register-timeout"
)

// Error is a failed step with what to do about it.
type Error struct {
	Kind   string
	Err    error
	Remedy string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *Error) Hint() string { return e.Remedy }

// Kind returns the kind of a push-install or SSH error, or "".
func Kind(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	var se *sshx.Error
	if errors.As(err, &se) {
		return se.Kind
	}
	return ""
}

// Step is the outcome of one step (the --json output, docs/server.md).
type Step struct {
	Step    string  `json:"step"`
	OK      bool    `json:"ok"`
	Detail  string  `json:"detail,omitempty"`
	Error   string  `json:"error,omitempty"`
	Kind    string  `json:"kind,omitempty"`
	Hint    string  `json:"hint,omitempty"`
	Seconds float64 `json:"seconds"`
}

// Server is what push install needs of the configuration server.
type Server interface {
	CreateToken(ctx context.Context, req api.TokenRequest) (api.Token, error)
	RevokeToken(ctx context.Context, id string) (api.Token, error)
	Machines(ctx context.Context) ([]api.Machine, error)
}

// Options of one push install.
type Options struct {
	SSH sshx.Config
	// Package is the agent package file (.deb or .rpm) on this host.
	Package string
	// AgentServer is the configuration server's HOST:PORT as the host
	// reaches it.
	AgentServer string
	// Machine is the agent's name; Disks the devices it protects.
	Machine string
	Disks   []string
	// Settings are more keys of the agent's configuration file
	// (flag name → value).
	Settings map[string]string
	// UploadDir is where the package is copied on the host.
	UploadDir string
	// TokenTTL is the lifetime of the registration token.
	TokenTTL time.Duration
	// Wait bounds the wait for the agent's registration.
	Wait time.Duration
	// Server issues the token and sees the registration.
	Server Server
	// Report is called with each step as it ends.
	Report func(Step)
}

// run is the state of one push install.
type run struct {
	o      Options
	c      *sshx.Client
	sudo   string // "sudo -n " or ""
	pkgFmt string // "deb" or "rpm"
	steps  []Step
}

// Run performs the push install and returns every step run; the error is
// the failed step's.
func Run(ctx context.Context, o Options) ([]Step, error) {
	if o.UploadDir == "" {
		o.UploadDir = "/var/tmp"
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = api.DefaultTokenTTL
	}
	if o.Wait <= 0 {
		o.Wait = 2 * time.Minute
	}
	if o.Report == nil {
		o.Report = func(Step) {}
	}
	r := &run{o: o}
	err := r.all(ctx)
	if r.c != nil {
		r.c.Close()
	}
	return r.steps, err
}

// step runs f as the step name and records its outcome.
func (r *run) step(name string, f func() (string, error)) error {
	start := time.Now()
	detail, err := f()
	s := Step{Step: name, OK: err == nil, Detail: detail, Seconds: time.Since(start).Seconds()}
	if err != nil {
		s.Error, s.Kind, s.Hint = err.Error(), Kind(err), api.Hint(err)
	}
	r.steps = append(r.steps, s)
	r.o.Report(s)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (r *run) all(ctx context.Context) error {
	o := r.o
	pkg, err := os.Stat(o.Package)
	if err != nil || !pkg.Mode().IsRegular() {
		return r.step(StepConnect, func() (string, error) {
			return "", &Error{Kind: KindPackageMissing, Err: fmt.Errorf("agent package %q: not a readable file", o.Package),
				Remedy: "build it with 'make package' (dist/lifeboat-agent_<version>_<arch>.deb or .rpm) and give it with --package"}
		})
	}
	switch {
	case strings.HasSuffix(o.Package, ".deb"):
		r.pkgFmt = "deb"
	case strings.HasSuffix(o.Package, ".rpm"):
		r.pkgFmt = "rpm"
	default:
		return r.step(StepConnect, func() (string, error) {
			return "", &Error{Kind: KindPackageType, Err: fmt.Errorf("agent package %q is neither a .deb nor a .rpm", o.Package),
				Remedy: "give --package the .deb or .rpm 'make package' built"}
		})
	}
	if err := r.step(StepConnect, func() (string, error) {
		c, err := sshx.Dial(ctx, o.SSH)
		if err != nil {
			return "", err
		}
		r.c = c
		d := fmt.Sprintf("%s@%s:%d, host key %s verified", o.SSH.User, o.SSH.Host, o.SSH.Port, c.Fingerprint)
		if c.AddedHostKey {
			d = fmt.Sprintf("%s@%s:%d, host key %s accepted and added to %s", o.SSH.User, o.SSH.Host, o.SSH.Port, c.Fingerprint, o.SSH.KnownHosts)
		}
		return d, nil
	}); err != nil {
		return err
	}
	if err := r.step(StepPrivs, func() (string, error) { return r.checkRoot(ctx) }); err != nil {
		return err
	}
	if err := r.step(StepHost, func() (string, error) { return r.checkHost(ctx) }); err != nil {
		return err
	}
	if err := r.step(StepSpace, func() (string, error) { return r.checkSpace(ctx, pkg.Size()) }); err != nil {
		return err
	}
	var remoteDir string
	defer func() {
		if remoteDir != "" {
			// The package is installed or useless: never leave it.
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r.c.Run(cctx, "rm -rf "+sshx.Quote(remoteDir), nil)
		}
	}()
	remotePkg := ""
	if err := r.step(StepCopy, func() (string, error) {
		res, err := r.c.Run(ctx, "mktemp -d "+sshx.Quote(path.Join(o.UploadDir, "lifeboat-push.XXXXXX")), nil)
		if err != nil {
			return "", err
		}
		if res.Exit != 0 {
			return "", r.spaceOrErr(fmt.Errorf("make a directory in %s: %s", o.UploadDir, strings.TrimSpace(res.Stderr)), o.UploadDir)
		}
		remoteDir = strings.TrimSpace(res.Stdout)
		remotePkg = path.Join(remoteDir, filepath.Base(o.Package))
		return r.copy(ctx, o.Package, remotePkg, pkg.Size())
	}); err != nil {
		return err
	}
	if err := r.step(StepInstall, func() (string, error) { return r.install(ctx, remotePkg) }); err != nil {
		return err
	}
	var tok api.Token
	if err := r.step(StepToken, func() (string, error) {
		t, err := o.Server.CreateToken(ctx, api.TokenRequest{Machine: o.Machine, TTLSeconds: int64(o.TokenTTL / time.Second)})
		if err != nil {
			return "", err
		}
		tok = t
		return fmt.Sprintf("token %s for machine %q, expires %s", t.ID, t.Machine, t.Expires.Format(time.RFC3339)), nil
	}); err != nil {
		return err
	}
	registered := false
	defer func() {
		if !registered {
			// An unused token must not outlive a failed install.
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			o.Server.RevokeToken(cctx, tok.ID)
		}
	}()
	if err := r.step(StepConfig, func() (string, error) { return r.writeConfig(ctx, tok.Token) }); err != nil {
		return err
	}
	if err := r.step(StepStart, func() (string, error) { return r.start(ctx) }); err != nil {
		return err
	}
	return r.step(StepRegister, func() (string, error) {
		d, err := r.waitRegistered(ctx)
		registered = err == nil
		return d, err
	})
}

// sh runs a command as root (through sudo -n when needed).
func (r *run) sh(ctx context.Context, script string, stdin io.Reader) (sshx.Result, error) {
	cmd := "sh -c " + sshx.Quote(script)
	if r.sudo != "" {
		cmd = r.sudo + cmd
	}
	return r.c.Run(ctx, cmd, stdin)
}

func (r *run) checkRoot(ctx context.Context) (string, error) {
	res, err := r.c.Run(ctx, "id -u", nil)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(res.Stdout) == "0" {
		return "logged in as root", nil
	}
	res, err = r.c.Run(ctx, "sudo -n true", nil)
	if err != nil {
		return "", err
	}
	if res.Exit == 0 {
		r.sudo = "sudo -n "
		return fmt.Sprintf("user %s uses passwordless sudo", r.o.SSH.User), nil
	}
	why := strings.TrimSpace(res.Stderr)
	if res.Exit == 127 || strings.Contains(why, "not found") {
		why = "sudo is not installed"
	}
	return "", &Error{Kind: KindNoRoot,
		Err:    fmt.Errorf("user %s on %s is not root and cannot sudo without a password (%s)", r.o.SSH.User, r.o.SSH.Host, why),
		Remedy: fmt.Sprintf("log in as root (--user root), or let %s run sudo without a password (a sudoers line '%s ALL=(root) NOPASSWD: ALL')", r.o.SSH.User, r.o.SSH.User)}
}

func (r *run) checkHost(ctx context.Context) (string, error) {
	res, err := r.c.Run(ctx, "uname -sm; command -v dpkg || true; command -v rpm || true", nil)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	uname := lines[0]
	have := map[string]bool{}
	for _, l := range lines[1:] {
		have[path.Base(strings.TrimSpace(l))] = true
	}
	tool := map[string]string{"deb": "dpkg", "rpm": "rpm"}[r.pkgFmt]
	if !strings.HasPrefix(uname, "Linux") {
		return "", &Error{Kind: KindPackageType, Err: fmt.Errorf("host runs %s, not Linux", uname), Remedy: "push-install installs the Linux agent only"}
	}
	if !have[tool] {
		other := map[string]string{"deb": "rpm", "rpm": "deb"}[r.pkgFmt]
		return "", &Error{Kind: KindPackageType, Err: fmt.Errorf("host has no %s to install a .%s", tool, r.pkgFmt),
			Remedy: fmt.Sprintf("give --package the .%s of the agent (make package builds both)", other)}
	}
	if r.pkgFmt == "deb" {
		// Does the package's architecture suit the host?
		res, err := r.c.Run(ctx, "dpkg --print-architecture", nil)
		if err == nil && res.Exit == 0 {
			arch := strings.TrimSpace(res.Stdout)
			if !strings.HasSuffix(r.o.Package, "_"+arch+".deb") && !strings.HasSuffix(r.o.Package, "_all.deb") {
				return "", &Error{Kind: KindPackageType, Err: fmt.Errorf("package %s is not for the host's architecture %s", filepath.Base(r.o.Package), arch),
					Remedy: fmt.Sprintf("build it for %s: make package ARCH=%s", arch, arch)}
			}
		}
	}
	return fmt.Sprintf("%s, installs .%s with %s", uname, r.pkgFmt, tool), nil
}

// freeKiB returns the free space of the filesystem of dir on the host.
func (r *run) freeKiB(ctx context.Context, dir string) (int64, error) {
	res, err := r.c.Run(ctx, "df -Pk "+sshx.Quote(dir), nil)
	if err != nil {
		return 0, err
	}
	if res.Exit != 0 {
		return 0, fmt.Errorf("df %s: %s", dir, strings.TrimSpace(res.Stderr))
	}
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 4 {
		return 0, fmt.Errorf("df %s: cannot read %q", dir, lines[len(lines)-1])
	}
	return strconv.ParseInt(f[3], 10, 64)
}

// installFactor is the space installing takes, in package sizes: the
// package is compressed, its files are not.
const installFactor = 3

func (r *run) checkSpace(ctx context.Context, size int64) (string, error) {
	up, err := r.freeKiB(ctx, r.o.UploadDir)
	if err != nil {
		return "", err
	}
	need := size/1024 + 1024 // and 1 MiB of margin
	if up < need {
		return "", &Error{Kind: KindNoSpace,
			Err:    fmt.Errorf("no space on the host: %s has %s free, the package needs %s", r.o.UploadDir, kib(up), kib(need)),
			Remedy: fmt.Sprintf("free space in %s on the host, or give --upload-dir a directory with room", r.o.UploadDir)}
	}
	usr, err := r.freeKiB(ctx, "/usr")
	if err != nil {
		return "", err
	}
	needUsr := installFactor*size/1024 + 1024
	if usr < needUsr {
		return "", &Error{Kind: KindNoSpace,
			Err:    fmt.Errorf("no space on the host: /usr has %s free, installing needs about %s", kib(usr), kib(needUsr)),
			Remedy: "free space on the host's /usr filesystem, then run push-install again"}
	}
	return fmt.Sprintf("%s free in %s, %s in /usr; package %s", kib(up), r.o.UploadDir, kib(usr), kib(size/1024)), nil
}

func kib(k int64) string {
	if k >= 1024 {
		return fmt.Sprintf("%.1f MiB", float64(k)/1024)
	}
	return fmt.Sprintf("%d KiB", k)
}

// spaceOrErr turns a host error that says ENOSPC into a no-space error.
func (r *run) spaceOrErr(err error, where string) error {
	if strings.Contains(err.Error(), "No space left on device") {
		return &Error{Kind: KindNoSpace, Err: fmt.Errorf("no space on the host: %w", err),
			Remedy: fmt.Sprintf("free space on the host (%s), then run push-install again", where)}
	}
	return err
}

// copy sends the package through the session's standard input and checks
// its SHA-256 on the host.
func (r *run) copy(ctx context.Context, local, remote string, size int64) (string, error) {
	f, err := os.Open(local)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	res, err := r.c.Run(ctx, "umask 077 && cat > "+sshx.Quote(remote)+" && sha256sum "+sshx.Quote(remote), io.TeeReader(f, h))
	if err != nil {
		return "", err
	}
	if res.Exit != 0 {
		return "", r.spaceOrErr(fmt.Errorf("copy to %s: %s", remote, strings.TrimSpace(res.Stderr)), r.o.UploadDir)
	}
	want := hex.EncodeToString(h.Sum(nil))
	if got := strings.Fields(res.Stdout); len(got) == 0 || got[0] != want {
		return "", fmt.Errorf("copy to %s: the copy's sha256 %q differs from the package's %s", remote, res.Stdout, want)
	}
	return fmt.Sprintf("%s (%s, sha256 %s…) to %s", filepath.Base(local), kib(size/1024), want[:12], remote), nil
}

// dpkgLockWait bounds the wait for another dpkg or apt to finish.
const dpkgLockWait = 3 * time.Minute

func (r *run) install(ctx context.Context, remotePkg string) (string, error) {
	var script string
	if r.pkgFmt == "deb" {
		// The configuration file push-install writes later is kept on
		// upgrades (confold); nothing asks questions.
		script = "DEBIAN_FRONTEND=noninteractive dpkg --force-confold --force-confdef -i " + sshx.Quote(remotePkg)
	} else {
		script = "rpm -U --replacepkgs " + sshx.Quote(remotePkg)
	}
	deadline := time.Now().Add(dpkgLockWait)
	for {
		res, err := r.sh(ctx, script+" 2>&1", nil)
		if err != nil {
			return "", err
		}
		out := strings.TrimSpace(res.Stdout)
		if res.Exit == 0 {
			return fmt.Sprintf("%s installed with %s", filepath.Base(remotePkg), map[string]string{"deb": "dpkg", "rpm": "rpm"}[r.pkgFmt]), nil
		}
		if strings.Contains(out, "lock") && (strings.Contains(out, "dpkg") || strings.Contains(out, "rpm")) && time.Now().Before(deadline) {
			// Another package manager runs: wait for it.
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(2 * time.Second):
			}
			continue
		}
		last := lastLines(out, 6)
		if strings.Contains(out, "No space left on device") {
			return "", &Error{Kind: KindNoSpace, Err: fmt.Errorf("no space on the host: the package manager failed: %s", last),
				Remedy: "free space on the host's root and /usr filesystems (df -h), then run push-install again; dpkg --audit shows what is half installed"}
		}
		return "", &Error{Kind: KindInstall, Err: fmt.Errorf("install failed (exit %d): %s", res.Exit, last),
			Remedy: "fix what the package manager says on the host, then run push-install again"}
	}
}

func lastLines(s string, n int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " / ")
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	return strconv.Quote(s) // Go's escapes are valid TOML for printable text
}

// configText is the agent's configuration file.
func (r *run) configText() string {
	o := r.o
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: written by 'lifeboat push-install' on %s.\n", ConfigFile, time.Now().UTC().Format(time.RFC3339))
	b.WriteString("# Keys are flags of 'lifeboat-agent run' (docs/agent.md).\n")
	fmt.Fprintf(&b, "server = %s\n", tomlString(o.AgentServer))
	fmt.Fprintf(&b, "name = %s\n", tomlString(o.Machine))
	ds := make([]string, len(o.Disks))
	for i, d := range o.Disks {
		ds[i] = tomlString(d)
	}
	fmt.Fprintf(&b, "disk = [%s]\n", strings.Join(ds, ", "))
	fmt.Fprintf(&b, "# A one-time token: the agent removes the file once registered.\n")
	fmt.Fprintf(&b, "token-file = %s\n", tomlString(TokenFile))
	if _, ok := o.Settings["state"]; !ok {
		fmt.Fprintf(&b, "state = %s\n", tomlString("/var/lib/lifeboat/agent"))
	}
	for _, k := range sortedKeys(o.Settings) {
		fmt.Fprintf(&b, "%s = %s\n", k, tomlString(o.Settings[k]))
	}
	return b.String()
}

func (r *run) writeConfig(ctx context.Context, token string) (string, error) {
	put := func(file, mode, content string) error {
		res, err := r.sh(ctx, "umask 077 && mkdir -p "+sshx.Quote(path.Dir(file))+" && cat > "+sshx.Quote(file+".tmp")+
			" && chmod "+mode+" "+sshx.Quote(file+".tmp")+" && mv "+sshx.Quote(file+".tmp")+" "+sshx.Quote(file), strings.NewReader(content))
		if err != nil {
			return err
		}
		if res.Exit != 0 {
			return r.spaceOrErr(fmt.Errorf("write %s: %s", file, strings.TrimSpace(res.Stderr)), path.Dir(file))
		}
		return nil
	}
	if err := put(TokenFile, "0600", token+"\n"); err != nil {
		return "", err
	}
	if err := put(ConfigFile, "0644", r.configText()); err != nil {
		return "", err
	}
	res, err := r.sh(ctx, AgentBin+" check-config --config "+ConfigFile+" 2>&1", nil)
	if err != nil {
		return "", err
	}
	if res.Exit != 0 {
		return "", &Error{Kind: KindStart, Err: fmt.Errorf("the agent refuses its configuration: %s", strings.TrimSpace(res.Stdout)),
			Remedy: "fix --disk, --name or --set and run push-install again"}
	}
	return fmt.Sprintf("%s (server %s, name %s, disks %s) and the token in %s", ConfigFile, r.o.AgentServer, r.o.Machine, strings.Join(r.o.Disks, ","), TokenFile), nil
}

// start starts the agent's service: restart, so that an agent the package
// already started picks up the new configuration. Where the service
// cannot start (no init system it knows), the agent is started in the
// background with its output in /var/log/lifeboat-agent.log.
func (r *run) start(ctx context.Context) (string, error) {
	res, err := r.sh(ctx, AgentBin+" restart --config "+ConfigFile+" 2>&1", nil)
	if err != nil {
		return "", err
	}
	if res.Exit == 0 {
		st, _ := r.sh(ctx, AgentBin+" status --config "+ConfigFile+" 2>&1", nil)
		return lastLines(strings.TrimSpace(res.Stdout), 1) + "; " + lastLines(strings.TrimSpace(st.Stdout), 1), nil
	}
	first := strings.TrimSpace(res.Stdout)
	script := "nohup setsid " + AgentBin + " run --config " + ConfigFile + " </dev/null >>/var/log/lifeboat-agent.log 2>&1 & echo $!"
	res, err = r.sh(ctx, script, nil)
	if err != nil {
		return "", err
	}
	if res.Exit != 0 {
		return "", &Error{Kind: KindStart, Err: fmt.Errorf("cannot start the agent: service: %s; directly: %s", lastLines(first, 2), strings.TrimSpace(res.Stderr)),
			Remedy: "see /var/log/lifeboat-agent.log on the host, and run 'lifeboat-agent check-config' there"}
	}
	return fmt.Sprintf("the service did not start (%s): started directly, pid %s, log /var/log/lifeboat-agent.log", lastLines(first, 1), strings.TrimSpace(res.Stdout)), nil
}

func (r *run) waitRegistered(ctx context.Context) (string, error) {
	start := time.Now()
	deadline := start.Add(r.o.Wait)
	for {
		ms, err := r.o.Server.Machines(ctx)
		if err != nil {
			return "", err
		}
		for _, m := range ms {
			if m.Name == r.o.Machine && m.Registered != nil && !m.Registered.Before(start.Add(-time.Minute)) {
				return fmt.Sprintf("machine %s registered at %s", m.Name, m.Registered.UTC().Format(time.RFC3339)), nil
			}
		}
		if time.Now().After(deadline) {
			log, _ := r.sh(ctx, "tail -n 5 /var/log/lifeboat-agent.err /var/log/lifeboat-agent.log 2>/dev/null", nil)
			return "", &Error{Kind: KindRegister,
				Err:    fmt.Errorf("the agent did not register within %s; its log ends: %s", r.o.Wait, lastLines(strings.TrimSpace(log.Stdout), 6)),
				Remedy: fmt.Sprintf("can the host reach the configuration server at %s? check the agent's log on the host ('lifeboat-agent status')", r.o.AgentServer)}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}
