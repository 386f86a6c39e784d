package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/client"
	"github.com/lifeboat-dr/lifeboat/hrlfmt"
	"github.com/lifeboat-dr/lifeboat/server/console"
	"github.com/lifeboat-dr/lifeboat/server/servertest"
)

// browser starts Debian's chromium headless for the test and returns a
// context of its tab that ends with a timeout.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not installed: scripts/install-deps.sh installs it")
		}
		t.Skip("chromium not installed (scripts/install-deps.sh installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		// The server's certificate is issued by its own CA; the TLS
		// itself is tested without the browser.
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancelT := context.WithTimeout(ctx, time.Minute)
	t.Cleanup(cancelT)
	return tctx
}

// fetchStatus is a script that runs a fetch in the page and gives its
// status.
func fetchStatus(path, csrf, body string) string {
	return `fetch('` + path + `', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': ` + csrf + `}, body: '` + body + `'}).then(r => r.status)`
}

func evalInt(t *testing.T, ctx context.Context, script string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return n
}

// waitJS waits until script gives a number above 0.
func waitJS(t *testing.T, ctx context.Context, script string) {
	t.Helper()
	for evalInt(t, ctx, script) == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", script, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func TestConsoleInABrowser(t *testing.T) {
	ctx := browser(t)
	dir := servertest.Init(t)
	passFile, err := console.InitAdmin(dir)
	if err != nil {
		t.Fatal(err)
	}
	const viewerPass = "viewer-password-long"
	if _, _, err := console.NewUsers(dir).Add("vera", api.RoleViewer, viewerPass); err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, servertest.Config(t, dir))
	a := servertest.Register(t, srv, dir, "web1")
	const size = 1 << 20
	bg := context.Background()
	if _, err := a.Process.SetMachine(bg, []api.DiskSpec{{Name: "sda", Size: size}}); err != nil {
		t.Fatal(err)
	}
	for seq, p := range []struct {
		id   string
		kind hrlfmt.CutKind
	}{{"p0", hrlfmt.CutCrash}, {"p1", hrlfmt.CutApp}, {"p2", hrlfmt.CutCrash}} {
		sg := servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: size, Seq: uint64(seq), Gen: uint64(seq + 1),
			Writes: []servertest.Write{{Off: 0, Data: mbrBlock(byte('a'+seq), size)}},
			Cuts:   []hrlfmt.Cut{{Kind: p.kind, PointID: p.id, Time: time.Now()}}}
		if _, err := a.Process.PutSegmentFile(bg, "sda", uint64(seq), sg.Build(t, t.TempDir())); err != nil {
			t.Fatal(err)
		}
	}
	servertest.WaitFor(t, "points listed", func() bool {
		ps, err := a.Process.Point(bg, "p2")
		return err == nil && ps.Listed
	})
	adminPass, _ := os.ReadFile(passFile)
	base := "https://" + srv.APIAddr() + "/ui/"
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	shots := os.Getenv("LIFEBOAT_SCREENSHOTS") // make console-screenshots
	shot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	login := func(name, pass string) {
		t.Helper()
		do(chromedp.Navigate(base),
			chromedp.WaitVisible(chromedp.CSS(`#login-form`)),
			chromedp.SendKeys(chromedp.CSS(`#login-form input[name=name]`), name),
			chromedp.SendKeys(chromedp.CSS(`#login-form input[name=password]`), pass),
			chromedp.Click(chromedp.CSS(`#login-form button`)),
			chromedp.WaitVisible(chromedp.CSS(`#machines`)))
	}

	// Logged in as the admin (an operator): the machine, its points.
	login("admin", strings.TrimSpace(string(adminPass)))
	machines := text(t, ctx, `#machines`)
	if !strings.Contains(machines, "web1") || !strings.Contains(machines, "protected") {
		t.Fatalf("machines page:\n%s", machines)
	}
	shot("console-machines")
	do(chromedp.Navigate(base+"#/m/web1"), chromedp.WaitVisible(chromedp.CSS(`#points`)))
	points := evalInt(t, ctx, `document.querySelectorAll('#points tbody tr').length`)
	marks := evalInt(t, ctx, `document.querySelectorAll('#timeline [data-point]').length`)
	if points != 3 || marks != 3 {
		t.Fatalf("machine page: %d point rows and %d timeline marks, want 3 and 3", points, marks)
	}
	if lag := text(t, ctx, `#lag`); lag == "-" || lag == "" {
		t.Fatalf("RPO lag shown as %q", lag)
	}

	// The lag chart draws the samples it is given (the server's history
	// starts with one sample and grows every 30 s).
	n := evalInt(t, ctx, `lineChart('lag', [{time: '2026-01-01T00:00:00Z', lag_seconds: 10}, {time: '2026-01-01T00:00:30Z', lag_seconds: 40},
		{time: '2026-01-01T00:01:00Z', lag_seconds: -1}, {time: '2026-01-01T00:01:30Z', lag_seconds: 20}], s => s.lag_seconds, 's')
		.querySelector('polyline').getAttribute('points').split(' ').length`)
	if n != 3 {
		t.Fatalf("lag chart of 3 samples with a lag (and one without) drew %d points", n)
	}

	// A bookmark from the console: the server hands the request to the
	// machine's agent at its next sync (here the agent's side of the
	// protocol, with its certificate; agent.TestServerBookmark covers the
	// agent's own), which cuts the point, waits until it is listed and
	// reports it.
	bm := servertest.Segment{Machine: "web1", Disk: "sda", DiskSize: size, Seq: 3, Gen: 4,
		Writes: []servertest.Write{{Off: 0, Data: bytes.Repeat([]byte{'d'}, 4096)}},
		Cuts:   []hrlfmt.Cut{{Kind: hrlfmt.CutCrash, PointID: "bm1", Time: time.Now()}}}.Build(t, t.TempDir())
	agentErr, release := make(chan error, 1), make(chan struct{})
	go fakeBookmarkAgent(ctx, srv.APIAddr(), a, bm, release, agentErr)
	do(chromedp.Navigate(base+"#/m/web1"), chromedp.WaitVisible(chromedp.CSS(`#bookmark-form`)),
		chromedp.Click(chromedp.CSS(`#bookmark-form button`)))
	if st := text(t, ctx, `#bookmark-result`); !strings.Contains(st, "running since") {
		t.Errorf("bookmark in progress shows %q", st)
	}
	// Its progress: picked up by the agent, which holds the point back
	// until the page has shown that.
	waitJS(t, ctx, `document.querySelector('#bookmark-result').innerText.includes('Picked up by the agent at') ? 1 : 0`)
	close(release)
	do(chromedp.WaitVisible(chromedp.CSS(`#bookmark-result [data-bookmark=bm1]`)))
	if err := <-agentErr; err != nil {
		t.Fatal(err)
	}
	if res := text(t, ctx, `#bookmark-result`); !strings.Contains(res, "point bm1") || !strings.Contains(res, "listed by the server") || !strings.Contains(res, "picked up by the agent 2") {
		t.Fatalf("bookmark result:\n%s", res)
	}
	waitJS(t, ctx, `document.querySelectorAll('#timeline [data-point=bm1]').length`)

	// A test failover from the console, to the app point.
	out := filepath.Join(t.TempDir(), "drill")
	waitJS(t, ctx, `document.querySelectorAll('#test-form select[name=point] option[value=p1]').length`)
	do(chromedp.SetValue(chromedp.CSS(`#test-form select[name=point]`), "p1"),
		chromedp.SetValue(chromedp.CSS(`#test-form input[name=out]`), out),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#test-form input[name=check]').checked = false`),
		chromedp.Click(chromedp.CSS(`#test-form button`)),
		chromedp.WaitVisible(chromedp.CSS(`#test-result ul`)))
	result := text(t, ctx, `#test-result`)
	if !strings.Contains(result, "Test failover of web1 to point p1") || !strings.Contains(result, "sda") {
		t.Fatalf("test failover result:\n%s", result)
	}
	shot("console-machine")
	img, err := os.ReadFile(filepath.Join(out, "sda.img"))
	if err != nil || len(img) != size || img[0] != 'b' {
		t.Fatalf("the test failover's image: %d bytes, %v; want point p1's", len(img), err)
	}

	// A boot-verified test failover from the console, in a real qemu: the
	// point holds no bootable disk, so it fails within its timeout, with
	// the reason, and the machine page shows it as the last boot test.
	do(chromedp.Evaluate[chromedp.Void](`(f => { f.boot.checked = true; f.out.value = ''; f.timeout.value = '2'; })(document.querySelector('#test-form'))`),
		chromedp.Click(chromedp.CSS(`#test-form button`)),
		chromedp.WaitVisible(chromedp.CSS(`#test-result [data-boot]`)))
	if res := text(t, ctx, `#test-result`); !strings.Contains(res, "Boot-verified test failover of web1 at point p1") || !strings.Contains(res, "FAIL: ") {
		t.Fatalf("boot test result:\n%s", res)
	}
	waitJS(t, ctx, `document.querySelector('#last-boot-test').innerText.startsWith('FAIL') ? 1 : 0`)
	do(chromedp.Evaluate[chromedp.Void](`document.querySelector('#test-form input[name=boot]').checked = false`))

	// The test failover's images are cleaned up from the console: the
	// image goes, the emptied directory too.
	waitJS(t, ctx, `document.querySelectorAll('#cleanup-form select option').length`)
	do(chromedp.Click(chromedp.CSS(`#cleanup-form button`)), chromedp.WaitVisible(chromedp.CSS(`#cleanup-result [data-cleaned]`)))
	if res := text(t, ctx, `#cleanup-result`); !strings.Contains(res, "1 image(s) removed") || !strings.Contains(res, filepath.Join(out, "sda.img")) {
		t.Fatalf("cleanup result:\n%s", res)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the test failover's directory after its cleanup: %v", err)
	}
	waitJS(t, ctx, `document.querySelector('#view').innerText.includes('kept (0)') ? 1 : 0`)

	// A real failover: refused with the wrong name typed, done with the
	// right one after a confirmation that names the machine and the point.
	fo := filepath.Join(t.TempDir(), "failover")
	do(chromedp.Evaluate[chromedp.Void](`window.confirm = m => { window.lastConfirm = m; return true; }`),
		chromedp.SetValue(chromedp.CSS(`#failover-form select[name=point]`), "p2"),
		chromedp.SetValue(chromedp.CSS(`#failover-form input[name=out]`), fo),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#failover-form input[name=check]').checked = false`),
		chromedp.SetValue(chromedp.CSS(`#failover-form input[name=confirm]`), "web2"),
		chromedp.Click(chromedp.CSS(`#failover-form button`)))
	waitJS(t, ctx, `document.querySelector('#failover-result').innerText.includes('Failover failed') ? 1 : 0`)
	if res := text(t, ctx, `#failover-result`); !strings.Contains(res, `type "web1"`) {
		t.Fatalf("failover with the wrong name typed:\n%s", res)
	}
	do(chromedp.SetValue(chromedp.CSS(`#failover-form input[name=confirm]`), "web1"),
		chromedp.Click(chromedp.CSS(`#failover-form button`)),
		chromedp.WaitVisible(chromedp.CSS(`#failover-result ul`)))
	confirmText, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.lastConfirm`))
	if err != nil || !strings.Contains(confirmText, "machine web1") || !strings.Contains(confirmText, "point p2") {
		t.Fatalf("the confirmation asked %q (%v); want it to name machine web1 and point p2", confirmText, err)
	}
	if res := text(t, ctx, `#failover-result`); !strings.Contains(res, "State now: failed-over") {
		t.Fatalf("failover result:\n%s", res)
	}
	if img, err := os.ReadFile(filepath.Join(fo, "sda.img")); err != nil || img[0] != 'c' {
		t.Fatalf("the failover's image is not point p2's: %v", err)
	}
	do(chromedp.SetValue(chromedp.CSS(`#commit-form input[name=confirm]`), "web1"),
		chromedp.Click(chromedp.CSS(`#commit-form button`)))
	waitJS(t, ctx, `document.querySelector('#view').innerText.includes('; committed at') ? 1 : 0`)
	if ms, err := servertest.Admin(t, srv, dir).Machines(bg); err != nil || ms[0].State != api.StateCommitted {
		t.Fatalf("after the console's commit the admin API shows %+v (%v)", ms, err)
	}

	// A group point is asked through the admin API's handler: an unknown
	// group gets its refusal.
	do(chromedp.Navigate(base+"#/plans"), chromedp.WaitVisible(chromedp.CSS(`#group-point-form`)),
		chromedp.SetValue(chromedp.CSS(`#group-point-form input[name=group]`), "nogroup"),
		chromedp.Click(chromedp.CSS(`#group-point-form button`)))
	waitJS(t, ctx, `document.querySelector('#group-point-result').innerText.includes('failed') ? 1 : 0`)
	if res := text(t, ctx, `#group-point-result`); !strings.Contains(res, "nogroup") {
		t.Fatalf("group point of an unknown group:\n%s", res)
	}

	// Without the CSRF token, the same action from the page is refused.
	if st := evalInt(t, ctx, fetchStatus("/ui/api/machines/web1/failover", "'forged'", `{"point":"p1","test":true,"out":"`+out+`2"}`)); st != 403 {
		t.Fatalf("action with a forged CSRF token: %d, want 403", st)
	}

	// A drill (turned on through the admin API) of the latest point, which
	// has no partition table: it fails at once, and the machines page
	// gains its Last drill column.
	adm := servertest.Admin(t, srv, dir)
	if _, err := adm.SetDrill(bg, "web1", api.DrillPolicy{IntervalSeconds: 86400, TimeoutSeconds: 2}); err != nil {
		t.Fatal(err)
	}
	servertest.WaitFor(t, "the drill recorded", func() bool {
		st, err := adm.Drill(bg, "web1")
		return err == nil && st.LastDrill != nil
	})

	// A viewer sees, and is refused an action even with its own token.
	do(chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`#login-form`)))
	login("vera", viewerPass)
	waitJS(t, ctx, `document.querySelectorAll('#machines [data-drill=web1]').length`)
	if d := text(t, ctx, `#machines [data-drill=web1]`); !strings.HasPrefix(d, "FAIL at ") || !strings.Contains(d, "partition table") {
		t.Fatalf("machines page, last drill: %q", d)
	}
	do(chromedp.Navigate(base+"#/m/web1"), chromedp.WaitVisible(chromedp.CSS(`#points`)))
	if actions := text(t, ctx, `#actions`); !strings.Contains(actions, "viewer") || strings.Contains(actions, "Run test failover") {
		t.Fatalf("a viewer's actions box:\n%s", actions)
	}
	st := evalInt(t, ctx, `fetch('/ui/api/session').then(r => r.json()).then(s => `+
		fetchStatus("/ui/api/machines/web1/failover", "s.csrf", `{"point":"p1","test":true,"out":"`+out+`3"}`)+`)`)
	if st != 403 {
		t.Fatalf("a viewer's action: %d, want 403", st)
	}
	do(chromedp.Navigate(base+"#/servers"), chromedp.WaitVisible(chromedp.CSS(`#servers`)))
	if s := text(t, ctx, `#servers`); !strings.Contains(s, "local (local)") || !strings.Contains(s, "web1") || !strings.Contains(s, "healthy") {
		t.Fatalf("servers page:\n%s", s)
	}
	do(chromedp.Navigate(base + "#/plans"))
	waitJS(t, ctx, `document.querySelector('#view').innerText.includes('No recovery plan') ? 1 : 0`)
	if n := evalInt(t, ctx, `document.querySelectorAll('#group-point-form').length`); n != 0 {
		t.Fatal("a viewer is offered the group point action")
	}
	do(chromedp.Navigate(base+"#/audit"), chromedp.WaitVisible(chromedp.CSS(`#audit`)))
	audit := text(t, ctx, `#audit`)
	shot("console-audit")
	for _, want := range []string{"admin\ttest-failover\tweb1 at p1\tok", "admin\tfailover\tweb1 at p2\tok", "admin\tcommit\tweb1\tok", "admin\tbookmark\tweb1\tok", "admin\ttest-failover-cleanup\t", "admin\tboot-test\tweb1 at p1\tfailed: the boot did not pass: ", "admin\tgroup-point\tnogroup\tfailed", "refused: missing or wrong CSRF token", "vera\tfailover\tweb1\trefused"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit page lacks %q:\n%s", want, audit)
		}
	}
}

// fakeBookmarkAgent is the agent's side of a bookmark asked through the
// server: it syncs until the server hands it a request, waits for
// release, sends the
// segment holding the point's cut, waits until the point is listed and
// reports it.
func fakeBookmarkAgent(ctx context.Context, apiAddr string, a *servertest.Agent, segment string, release <-chan struct{}, done chan<- error) {
	cfg, err := client.NewAgentConfig(apiAddr, a.Cert, a.CAPEM)
	if err != nil {
		done <- err
		return
	}
	for {
		asg, err := cfg.SyncGroup(ctx, "")
		if err != nil {
			done <- fmt.Errorf("agent sync: %w", err)
			return
		}
		if asg.Bookmark != nil {
			select {
			case <-release:
			case <-ctx.Done():
				done <- ctx.Err()
				return
			}
			if _, err := a.Process.PutSegmentFile(ctx, "sda", 3, segment); err != nil {
				done <- err
				return
			}
			for {
				ps, err := a.Process.Point(ctx, "bm1")
				if err == nil && ps.Listed {
					break
				}
				select {
				case <-ctx.Done():
					done <- ctx.Err()
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			p := &api.AgentPoint{ID: "bm1", Kind: "crash", Time: time.Now(), Gen: 4}
			done <- cfg.BookmarkResult(ctx, api.BookmarkResult{Request: asg.Bookmark.ID, OK: true, Point: p, Listed: true})
			return
		}
		select {
		case <-ctx.Done():
			done <- ctx.Err()
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// mbrBlock is a first block of fill bytes with an MBR of one partition
// over a disk of size bytes: no boot code, so a boot of it never reaches
// ready.
func mbrBlock(fill byte, size int64) []byte {
	b := bytes.Repeat([]byte{fill}, 4096)
	e := b[446:462]
	clear(b[446:510])
	e[0], e[4] = 0x80, 0x83
	binary.LittleEndian.PutUint32(e[8:], 1)
	binary.LittleEndian.PutUint32(e[12:], uint32(size/512-1))
	b[510], b[511] = 0x55, 0xaa
	return b
}
