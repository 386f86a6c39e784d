package console

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lifeboat-dr/lifeboat/api"
	"github.com/lifeboat-dr/lifeboat/server/httpapi"
)

//go:embed ui
var uiFS embed.FS

const (
	// CookieName is the session cookie.
	CookieName = "lifeboat_session"
	// CSRFHeader carries the session's CSRF token on every action.
	CSRFHeader = "X-CSRF-Token"
	// AdminCertUser is the audit log's name for the admin certificate.
	AdminCertUser = "admin-certificate"
)

// API is the admin API's own handlers the console reads and acts
// through, given by the composition: the console is no second source of
// truth.
type API struct {
	Machines httpapi.HandlerFunc // GET /v1/machines
	Points   httpapi.HandlerFunc // GET /v1/machines/{m}/points
	Alerts   httpapi.HandlerFunc // GET /v1/alerts
	Failover httpapi.HandlerFunc // POST /v1/machines/{m}/failover
	Commit   httpapi.HandlerFunc // POST /v1/machines/{m}/commit
	Servers  httpapi.HandlerFunc // GET /v1/servers
	Plans    httpapi.HandlerFunc // GET /v1/plans
	Groups   httpapi.HandlerFunc // GET /v1/groups
	// GroupPoint asks a group's coordinator agent, through the server,
	// for a group point: POST /v1/groups/{g}/point.
	GroupPoint httpapi.HandlerFunc
	// Bookmark asks a machine's agent, through the server, for a point:
	// POST /v1/machines/{m}/bookmark.
	Bookmark httpapi.HandlerFunc
	// BookmarkStatus is the progress of a machine's pending bookmark:
	// GET /v1/machines/{m}/bookmark.
	BookmarkStatus httpapi.HandlerFunc
	// BootTest is a boot-verified test failover: POST
	// /v1/machines/{m}/boot-test. Drills lists every machine's drills
	// (GET /v1/drills); DrillRun runs one now (POST
	// /v1/machines/{m}/drill/run).
	BootTest httpapi.HandlerFunc
	Drills   httpapi.HandlerFunc
	DrillRun httpapi.HandlerFunc
	// TestFailovers lists the test failovers whose images are kept (GET
	// /v1/test-failovers); CleanupTestFailover removes one's images
	// (DELETE /v1/test-failovers/{id}).
	TestFailovers       httpapi.HandlerFunc
	CleanupTestFailover httpapi.HandlerFunc
}

// Options configures a Console.
type Options struct {
	// DataDir is the server's data directory.
	DataDir string
	API     API
	// Sampler feeds the lag history; nil keeps none.
	Sampler Sampler
	Log     *slog.Logger
	// SampleEvery is the history's period (0: 30s); HistoryLen the
	// samples kept per machine (0: 720, six hours at 30s).
	SampleEvery time.Duration
	HistoryLen  int
	// LoginLimit failed logins per client address or account within
	// LoginWindow block further attempts (0: 5 in 5 minutes).
	LoginLimit  int
	LoginWindow time.Duration
	// SessionIdle and SessionMax end a session (0: 30 minutes, 12 h).
	SessionIdle, SessionMax time.Duration
}

// Console serves /ui/ and the admin API's /v1/users and /v1/audit.
type Console struct {
	o        Options
	log      *slog.Logger
	users    *Users
	audit    *Audit
	sessions *sessions
	limit    *limiter
	hist     *history
}

// New returns the console of the data directory o.DataDir.
func New(o Options) *Console {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 30 * time.Second
	}
	if o.HistoryLen <= 0 {
		o.HistoryLen = 720
	}
	if o.LoginLimit <= 0 {
		o.LoginLimit = 5
	}
	if o.LoginWindow <= 0 {
		o.LoginWindow = 5 * time.Minute
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = 30 * time.Minute
	}
	if o.SessionMax <= 0 {
		o.SessionMax = 12 * time.Hour
	}
	return &Console{
		o:        o,
		log:      o.Log.With(httpapi.LogComponent, "console"),
		users:    NewUsers(o.DataDir),
		audit:    NewAudit(o.DataDir),
		sessions: newSessions(filepath.Join(o.DataDir, Dir, SessionsFile), o.SessionIdle, o.SessionMax, o.Log),
		limit:    newLimiter(o.LoginLimit, o.LoginWindow),
		hist:     newHistory(o.HistoryLen),
	}
}

// Run samples the lag history until ctx ends.
func (c *Console) Run(ctx context.Context) {
	if c.o.Sampler == nil {
		return
	}
	t := time.NewTicker(c.o.SampleEvery)
	defer t.Stop()
	for {
		c.hist.sample(ctx, c.o.Sampler, c.log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Handler serves everything under /ui/.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f httpapi.HandlerFunc) { mux.Handle(pattern, httpapi.Handle(c.log, f)) }
	static, _ := fs.Sub(uiFS, "ui")
	files := http.StripPrefix("/ui/", http.FileServerFS(static))
	mux.Handle("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			httpapi.WriteJSON(w, http.StatusMethodNotAllowed, api.Error{Error: "method not allowed", Hint: "the console's pages are read with GET"})
			return
		}
		files.ServeHTTP(w, r)
	}))
	h("POST /ui/api/login", c.login)
	h("POST /ui/api/logout", c.action("logout", c.logout))
	h("GET /ui/api/session", c.view(c.sessionInfo))
	h("GET /ui/api/machines", c.view(served(c.o.API.Machines)))
	h("GET /ui/api/machines/{m}/points", c.view(served(c.o.API.Points)))
	h("GET /ui/api/machines/{m}/history", c.view(c.historyOf))
	h("GET /ui/api/alerts", c.view(served(c.o.API.Alerts)))
	h("GET /ui/api/audit", c.view(c.auditList))
	h("GET /ui/api/servers", c.view(served(c.o.API.Servers)))
	h("GET /ui/api/plans", c.view(served(c.o.API.Plans)))
	h("GET /ui/api/groups", c.view(served(c.o.API.Groups)))
	h("POST /ui/api/machines/{m}/failover", c.operator(c.failover))
	h("POST /ui/api/machines/{m}/commit", c.operator(c.commit))
	h("POST /ui/api/groups/{g}/point", c.operator(c.groupPoint))
	h("POST /ui/api/machines/{m}/bookmark", c.operator(c.bookmark))
	h("GET /ui/api/machines/{m}/bookmark", c.view(served(c.o.API.BookmarkStatus)))
	h("GET /ui/api/drills", c.view(served(c.o.API.Drills)))
	h("POST /ui/api/machines/{m}/boot-test", c.operator(c.bootTest))
	h("POST /ui/api/machines/{m}/drill/run", c.operator(c.drillRun))
	h("GET /ui/api/test-failovers", c.view(served(c.o.API.TestFailovers)))
	h("POST /ui/api/test-failovers/{id}/cleanup", c.operator(c.cleanupTest))
	h("/ui/api/", func(w http.ResponseWriter, r *http.Request) error {
		return httpapi.Errorf(http.StatusNotFound, "no such console endpoint: "+r.Method+" "+r.URL.Path, "see docs/console.md")
	})
	return securityHeaders(mux)
}

// served answers 501 for a part of the admin API this server does not
// give the console.
func served(h httpapi.HandlerFunc) httpapi.HandlerFunc {
	if h != nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		return httpapi.Errorf(http.StatusNotImplemented, "not served by this server: "+r.URL.Path, "use the lifeboat CLI")
	}
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func remote(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// who is the logged-in account of a request.
type who struct {
	user, role, token string
	s                 session
}

const loginHint = "log in at /ui/ again"

func (c *Console) who(r *http.Request) (who, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return who{}, httpapi.Errorf(http.StatusUnauthorized, "not logged in", loginHint)
	}
	s, ok := c.sessions.get(ck.Value, time.Now())
	if !ok {
		return who{}, httpapi.Errorf(http.StatusUnauthorized, "session expired or unknown", loginHint)
	}
	role, ok := c.users.role(s.user)
	if !ok {
		c.sessions.deleteUser(s.user)
		return who{}, httpapi.Errorf(http.StatusUnauthorized, "account "+strconv.Quote(s.user)+" no longer exists", "ask an administrator for an account")
	}
	return who{user: s.user, role: role, token: ck.Value, s: s}, nil
}

type whoKey struct{}

func whoOf(r *http.Request) who { w, _ := r.Context().Value(whoKey{}).(who); return w }

// view admits any logged-in account.
func (c *Console) view(h httpapi.HandlerFunc) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		wh, err := c.who(r)
		if err != nil {
			return err
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), whoKey{}, wh)))
	}
}

// checkCSRF admits a request that carries the session's CSRF token and,
// when it says where it comes from, comes from this origin.
func checkCSRF(r *http.Request, s session) error {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return httpapi.Errorf(http.StatusForbidden, "request from another origin", "act from the console's own page")
		}
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
		return httpapi.Errorf(http.StatusForbidden, "missing or wrong CSRF token", "reload the console's page and try again")
	}
	return nil
}

// action admits a logged-in account with the session's CSRF token.
func (c *Console) action(name string, h httpapi.HandlerFunc) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		wh, err := c.who(r)
		if err != nil {
			return err
		}
		if err := checkCSRF(r, wh.s); err != nil {
			if name == "" {
				name = actionName(r)
			}
			c.record(r, wh.user, name, r.PathValue("m")+r.PathValue("g")+r.PathValue("id"), err)
			return err
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), whoKey{}, wh)))
	}
}

// operator admits a logged-in operator with the session's CSRF token.
func (c *Console) operator(h httpapi.HandlerFunc) httpapi.HandlerFunc {
	return c.action("", func(w http.ResponseWriter, r *http.Request) error {
		wh := whoOf(r)
		if wh.role != api.RoleOperator {
			err := httpapi.Errorf(http.StatusForbidden, "account "+strconv.Quote(wh.user)+" is a viewer: only an operator may act", "ask an administrator: lifeboat users add NAME --role operator")
			c.record(r, wh.user, actionName(r), r.PathValue("m")+r.PathValue("g")+r.PathValue("id"), err)
			return err
		}
		return h(w, r)
	})
}

func actionName(r *http.Request) string { return path.Base(r.URL.Path) }

// record writes an audit entry; result is "ok" for a nil err.
func (c *Console) record(r *http.Request, user, action, target string, err error) error {
	e := api.AuditEntry{User: user, Action: action, Target: target, Result: "ok", Remote: remote(r)}
	if err != nil {
		var he *httpapi.Error
		if asHTTP(err, &he) && (he.Status == http.StatusForbidden || he.Status == http.StatusTooManyRequests || he.Status == http.StatusUnauthorized) {
			e.Result = "refused: " + he.Msg
		} else if he != nil {
			e.Result = "failed: " + he.Msg
		} else {
			e.Result = "failed: " + err.Error()
		}
	}
	if werr := c.audit.Write(e); werr != nil {
		c.log.Error("audit log not written", httpapi.LogErr, werr, "action", action, "user", user)
		return werr
	}
	return nil
}

type loginRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// sessionAnswer is what the page learns of its session.
type sessionAnswer struct {
	User string `json:"user"`
	Role string `json:"role"`
	CSRF string `json:"csrf"`
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			return httpapi.Errorf(http.StatusForbidden, "login from another origin", "log in on the console's own page")
		}
	}
	var req loginRequest
	if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	now := time.Now()
	ip := "addr:" + remote(r)
	acct := "user:" + req.Name
	if wait, ok := c.limit.blocked(now, ip, acct); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		err := httpapi.Errorf(http.StatusTooManyRequests, "too many failed logins", fmt.Sprintf("wait %d seconds and try again", int(wait.Seconds())+1))
		c.record(r, req.Name, "login", "", err)
		return err
	}
	u, ok, err := c.users.Check(req.Name, req.Password)
	if err != nil {
		return err
	}
	if !ok {
		c.limit.fail(now, ip, acct)
		err := httpapi.Errorf(http.StatusUnauthorized, "wrong account name or password", "an administrator lists the accounts with 'lifeboat users list'")
		c.record(r, req.Name, "login", "", err)
		return err
	}
	c.limit.reset(acct)
	if err := c.record(r, u.Name, "login", "", nil); err != nil {
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Msg: "the audit log cannot be written", Remedy: "see the server's log: the data directory may be full or read-only", Err: err}
	}
	tok, s := c.sessions.create(u.Name, now)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/ui/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	httpapi.WriteJSON(w, http.StatusOK, sessionAnswer{User: u.Name, Role: u.Role, CSRF: s.csrf})
	return nil
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) error {
	wh := whoOf(r)
	c.sessions.delete(wh.token)
	c.record(r, wh.user, "logout", "", nil)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/ui/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Console) sessionInfo(w http.ResponseWriter, r *http.Request) error {
	wh := whoOf(r)
	httpapi.WriteJSON(w, http.StatusOK, sessionAnswer{User: wh.user, Role: wh.role, CSRF: wh.s.csrf})
	return nil
}

func (c *Console) historyOf(w http.ResponseWriter, r *http.Request) error {
	m := r.PathValue("m")
	if err := api.ValidName(m); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, "bad machine name: "+err.Error(), "pick a machine from the list")
	}
	httpapi.WriteJSON(w, http.StatusOK, c.hist.get(m))
	return nil
}

func (c *Console) auditList(w http.ResponseWriter, r *http.Request) error {
	es, err := c.audit.Last(200)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, es)
	return nil
}

// failoverRequest is the console's failover: the admin API's request and,
// for a real failover, the machine's name typed again as confirmation.
type failoverRequest struct {
	api.FailoverRequest
	Confirm string `json:"confirm"`
}

// statusWriter notes the status a handler answered and, when body is
// set, keeps a copy of the answer.
type statusWriter struct {
	http.ResponseWriter
	status int
	body   *bytes.Buffer
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.body != nil && s.body.Len() < 1<<20 {
		s.body.Write(b)
	}
	return s.ResponseWriter.Write(b)
}

// act runs an admin API handler with body as its request, writing the
// action to the audit log before (started) and after (its result).
func (c *Console) act(w http.ResponseWriter, r *http.Request, action, target string, body any, h httpapi.HandlerFunc) error {
	return c.actOutcome(w, r, action, target, body, h, nil)
}

// actOutcome is act for an action whose successful answer may still be a
// failure (a boot that did not pass): outcome reads the answer and says
// what failed, "" if nothing.
func (c *Console) actOutcome(w http.ResponseWriter, r *http.Request, action, target string, body any, h httpapi.HandlerFunc, outcome func([]byte) string) error {
	wh := whoOf(r)
	if err := c.audit.Write(api.AuditEntry{User: wh.user, Action: action, Target: target, Result: "started", Remote: remote(r)}); err != nil {
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Msg: "the audit log cannot be written: nothing was done", Remedy: "see the server's log: the data directory may be full or read-only", Err: err}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(b))
	r2.ContentLength = int64(len(b))
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	if outcome != nil {
		sw.body = &bytes.Buffer{}
	}
	err = h(sw, r2)
	if err == nil && sw.status >= 300 {
		err = fmt.Errorf("answered %d", sw.status)
	}
	rerr := err
	if err == nil && outcome != nil {
		if msg := outcome(sw.body.Bytes()); msg != "" {
			rerr = errors.New(msg)
		}
	}
	c.record(r, wh.user, action, target, rerr)
	return err
}

func (c *Console) failover(w http.ResponseWriter, r *http.Request) error {
	m := r.PathValue("m")
	var req failoverRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	action := "failover"
	if req.Test {
		action = "test-failover"
	}
	target := m + " at " + req.Point
	if !req.Test && req.Confirm != m {
		err := httpapi.Errorf(http.StatusBadRequest, "a failover needs the machine's name typed as confirmation", "type "+strconv.Quote(m)+" in the confirmation box")
		c.record(r, whoOf(r).user, action, target, err)
		return err
	}
	return c.act(w, r, action, target, req.FailoverRequest, served(c.o.API.Failover))
}

type commitRequest struct {
	Confirm string `json:"confirm"`
}

func (c *Console) commit(w http.ResponseWriter, r *http.Request) error {
	m := r.PathValue("m")
	var req commitRequest
	if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	if req.Confirm != m {
		err := httpapi.Errorf(http.StatusBadRequest, "a commit needs the machine's name typed as confirmation", "type "+strconv.Quote(m)+" in the confirmation box")
		c.record(r, whoOf(r).user, "commit", m, err)
		return err
	}
	return c.act(w, r, "commit", m, struct{}{}, served(c.o.API.Commit))
}

func (c *Console) groupPoint(w http.ResponseWriter, r *http.Request) error {
	return c.act(w, r, "group-point", r.PathValue("g"), struct{}{}, served(c.o.API.GroupPoint))
}

func (c *Console) bookmark(w http.ResponseWriter, r *http.Request) error {
	var req api.BookmarkRequest
	if err := httpapi.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	return c.act(w, r, "bookmark", r.PathValue("m"), req, served(c.o.API.Bookmark))
}

// bootOutcome says why a boot-verified test failover or drill did not
// pass, "" when it did.
func bootOutcome(b []byte) string {
	var res api.BootResult
	if json.Unmarshal(b, &res) != nil {
		return "unreadable answer"
	}
	if res.Pass {
		return ""
	}
	return "the boot did not pass: " + res.Reason
}

func (c *Console) bootTest(w http.ResponseWriter, r *http.Request) error {
	var req api.BootTestRequest
	if err := httpapi.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	return c.actOutcome(w, r, "boot-test", r.PathValue("m")+" at "+req.Point, req, served(c.o.API.BootTest), bootOutcome)
}

func (c *Console) drillRun(w http.ResponseWriter, r *http.Request) error {
	return c.actOutcome(w, r, "drill-run", r.PathValue("m"), struct{}{}, served(c.o.API.DrillRun), func(b []byte) string {
		var st api.DrillStatus
		if json.Unmarshal(b, &st) != nil {
			return "unreadable answer"
		}
		if st.LastDrill == nil {
			return "no drill recorded"
		}
		b, _ = json.Marshal(st.LastDrill)
		return bootOutcome(b)
	})
}

func (c *Console) cleanupTest(w http.ResponseWriter, r *http.Request) error {
	return c.act(w, r, "test-failover-cleanup", r.PathValue("id"), struct{}{}, served(c.o.API.CleanupTestFailover))
}
