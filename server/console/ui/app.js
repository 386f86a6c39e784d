// Lifeboat's web console: plain JavaScript, no framework, no CDN.
// Every datum is inserted as text (never as HTML). Reads poll every
// POLL_MS; actions carry the session's CSRF token (docs/console.md).
'use strict';

const POLL_MS = 5000;
const state = { session: null, route: null, timer: null };

class APIError extends Error {
  constructor(status, msg, hint) { super(msg); this.status = status; this.hint = hint; }
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

function svgEl(tag, attrs, ...kids) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

async function call(method, path, body) {
  const opt = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) { opt.headers['Content-Type'] = 'application/json'; opt.body = JSON.stringify(body); }
  if (method !== 'GET' && state.session) opt.headers['X-CSRF-Token'] = state.session.csrf;
  const r = await fetch('/ui/api/' + path, opt);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (r.status === 401 && path !== 'login') { showLogin(); }
  if (!r.ok) throw new APIError(r.status, (data && data.error) || r.statusText, (data && data.hint) || '');
  return data;
}

function errorBox(err) {
  return el('p', { class: 'error', role: 'alert' }, 'Error: ' + err.message,
    err.hint ? el('span', { class: 'remedy' }, err.hint) : null);
}

// ---- formatting ----
function fmtTime(t) {
  if (!t) return '-';
  const d = new Date(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
function fmtDur(s) {
  if (s === null || s === undefined || s < 0) return '-';
  if (s < 90) return Math.round(s) + ' s';
  if (s < 5400) return Math.round(s / 60) + ' min';
  if (s < 172800) return (s / 3600).toFixed(1) + ' h';
  return (s / 86400).toFixed(1) + ' d';
}
function fmtSize(b) {
  if (!b) return 'unknown';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return b.toFixed(i ? 1 : 0) + ' ' + u[i];
}
function lagOf(m) { return m.latest_point ? (Date.now() - new Date(m.latest_point.time)) / 1000 : null; }
function diskText(d) {
  const behind = d.next_seq === 0 ? 0 : (d.applied ? d.next_seq - 1 - d.applied_seq : d.next_seq);
  return d.disk + ': ' + (d.next_seq === 0 ? 'nothing received yet' :
    (d.applied ? 'applied to segment ' + d.applied_seq : 'nothing applied') + ', ' + behind + ' segment(s) to apply');
}
function alertItem(a) {
  return el('li', null, el('span', { class: a.severity }, a.severity.toUpperCase()), ' ',
    (a.disk ? a.disk + ': ' : ''), a.message, el('span', { class: 'remedy' }, a.remedy));
}
function lastApp(points) {
  for (let i = points.length - 1; i >= 0; i--) if (points[i].kind === 'app') return points[i];
  return null;
}

// ---- login ----
function showLogin() {
  state.session = null;
  document.getElementById('login').hidden = false;
  for (const id of ['nav', 'logout', 'actions']) document.getElementById(id).hidden = true;
  document.getElementById('view').replaceChildren();
  document.getElementById('who').textContent = '';
  if (state.timer) { clearTimeout(state.timer); state.timer = null; }
}

async function login(ev) {
  ev.preventDefault();
  const f = ev.target;
  const out = document.getElementById('login-error');
  out.textContent = '';
  try {
    state.session = await call('POST', 'login', { name: f.name.value, password: f.password.value });
    f.password.value = '';
    started();
  } catch (err) {
    out.replaceChildren(err.message, err.hint ? el('span', { class: 'remedy' }, err.hint) : '');
  }
}

function started() {
  document.getElementById('login').hidden = true;
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  document.getElementById('who').textContent = state.session.user + ' (' + state.session.role + ')';
  state.route = null;
  route();
}

async function logout() {
  try { await call('POST', 'logout'); } catch (e) { /* the session is gone either way */ }
  showLogin();
}

// ---- routing and polling ----
function route() {
  if (!state.session) return;
  const h = location.hash || '#/';
  const changed = h !== state.route;
  state.route = h;
  if (changed) renderActions(h);
  refresh();
}

async function refresh() {
  if (state.timer) clearTimeout(state.timer);
  const h = state.route;
  const view = document.getElementById('view');
  const st = document.getElementById('status');
  try {
    let content;
    if (h.startsWith('#/m/')) content = await machinePage(decodeURIComponent(h.slice(4)));
    else if (h === '#/alerts') content = await alertsPage();
    else if (h === '#/audit') content = await auditPage();
    else if (h === '#/servers') content = await serversPage();
    else if (h === '#/plans') content = await plansPage();
    else content = await machinesPage();
    if (h !== state.route || !state.session) return;
    view.replaceChildren(content);
    st.textContent = 'Updated ' + fmtTime(new Date()) + ' (every ' + POLL_MS / 1000 + ' s)';
  } catch (err) {
    if (!state.session) return;
    st.replaceChildren(errorBox(err));
  }
  if (state.session) state.timer = setTimeout(refresh, POLL_MS);
}

// ---- pages ----
function drillsOf(list) {
  const out = {};
  for (const d of list || []) out[d.machine] = d;
  return out;
}
function drillsExist(ds) { return Object.values(ds).some(d => d.policy.interval_seconds > 0 || d.last_drill); }
function bootLine(r) {
  if (!r) return 'none';
  return (r.pass ? 'PASS' : 'FAIL') + ' at ' + fmtTime(r.started) + ' (point ' + r.point.id + ')' + (r.pass ? '' : ': ' + r.reason);
}

async function machinesPage() {
  const [ms, drills] = await Promise.all([call('GET', 'machines'), call('GET', 'drills').catch(() => [])]);
  const pts = await Promise.all(ms.map(m => call('GET', 'machines/' + encodeURIComponent(m.name) + '/points').catch(() => [])));
  if (ms.length === 0) return el('p', null, 'No machine yet: register an agent with the passphrase (docs/agent.md).');
  const ds = drillsOf(drills);
  const withDrills = drillsExist(ds);
  const rows = ms.map((m, i) => {
    const app = lastApp(pts[i]);
    const d = ds[m.name];
    return el('tr', null,
      el('td', null, el('a', { href: '#/m/' + encodeURIComponent(m.name) }, m.name)),
      el('td', null, m.state),
      el('td', null, el('ul', null, m.disks.map(d => el('li', null, diskText(d))))),
      el('td', { 'data-lag': m.name }, fmtDur(lagOf(m))),
      el('td', null, m.latest_point ? fmtTime(m.latest_point.time) + ' (' + m.latest_point.kind + ')' : 'none'),
      el('td', null, app ? fmtTime(app.time) : 'none'),
      withDrills ? el('td', { 'data-drill': m.name }, d && d.running ? 'running' : bootLine(d && d.last_drill)) : null,
      el('td', null, (m.alerts.length + m.problems.length) === 0 ? 'none' :
        el('ul', null, m.alerts.map(alertItem), m.problems.map(p => el('li', null, 'PROBLEM ', p)))));
  });
  const heads = ['Machine', 'State', 'Disks', 'RPO lag', 'Last point', 'Last app point'].concat(withDrills ? ['Last drill'] : [], ['Alerts']);
  return el('div', null, el('h1', null, 'Machines'),
    el('table', { id: 'machines' },
      el('thead', null, el('tr', null, heads.map(t => el('th', null, t)))),
      el('tbody', null, rows)));
}

function lineChart(title, samples, valueOf, unit) {
  const W = 900, H = 160, L = 60, B = 24;
  const pts = samples.map(s => [new Date(s.time).getTime(), valueOf(s)]).filter(p => p[1] !== null && p[1] >= 0);
  const box = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  box.append(svgEl('title', null, title));
  if (pts.length < 2) {
    box.append(svgEl('text', { x: 10, y: H / 2 }, 'Not enough history yet: the server samples every 30 s.'));
    return box;
  }
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  const vmax = Math.max(1, ...pts.map(p => p[1]));
  const x = t => L + (W - L - 10) * (t - t0) / Math.max(1, t1 - t0);
  const y = v => (H - B) - (H - B - 10) * v / vmax;
  box.append(svgEl('line', { class: 'axis', x1: L, y1: H - B, x2: W - 10, y2: H - B }));
  box.append(svgEl('line', { class: 'axis', x1: L, y1: 10, x2: L, y2: H - B }));
  box.append(svgEl('text', { x: 2, y: 16 }, unit === 's' ? fmtDur(vmax) : vmax + ' ' + unit));
  box.append(svgEl('text', { x: 2, y: H - B }, '0'));
  box.append(svgEl('text', { x: L, y: H - 6 }, fmtTime(t0)));
  box.append(svgEl('text', { x: W - 10, y: H - 6, 'text-anchor': 'end' }, fmtTime(t1)));
  box.append(svgEl('polyline', { class: 'chart-line', points: pts.map(p => x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(' ') }));
  return box;
}

function timeline(points) {
  const W = 900, H = 90, L = 20, R = 20;
  const box = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Recovery points on a timeline', id: 'timeline' });
  box.append(svgEl('title', null, 'Recovery points: circle crash, square app, diamond group; hollow: merged by retention, not materializable'));
  if (points.length === 0) { box.append(svgEl('text', { x: 10, y: 40 }, 'No recovery point yet.')); return box; }
  const ts = points.map(p => new Date(p.time).getTime());
  const t0 = Math.min(...ts), t1 = Math.max(...ts);
  const x = t => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
  const rows = { crash: 25, app: 45, group: 65 };
  box.append(svgEl('line', { class: 'axis', x1: L, y1: 80, x2: W - R, y2: 80 }));
  points.forEach((p, i) => {
    const cx = x(ts[i]), cy = rows[p.kind] || 25;
    const cls = p.materializable ? 'mark-full' : 'mark-hollow';
    const tip = svgEl('title', null, `${p.id} ${p.kind} ${fmtTime(p.time)}${p.materializable ? '' : ' (merged, not materializable)'}`);
    let m;
    if (p.kind === 'app') m = svgEl('rect', { x: cx - 5, y: cy - 5, width: 10, height: 10, class: cls });
    else if (p.kind === 'group') m = svgEl('polygon', { points: `${cx},${cy - 6} ${cx + 6},${cy} ${cx},${cy + 6} ${cx - 6},${cy}`, class: cls });
    else m = svgEl('circle', { cx, cy, r: 5, class: cls });
    m.setAttribute('data-point', p.id);
    m.append(tip);
    box.append(m);
  });
  box.append(svgEl('text', { x: 2, y: 12 }, 'crash ●  app ■  group ◆  hollow: merged'));
  box.append(svgEl('text', { x: L, y: H - 1 }, fmtTime(t0)));
  box.append(svgEl('text', { x: W - R, y: H - 1, 'text-anchor': 'end' }, fmtTime(t1)));
  return box;
}

async function machinePage(name) {
  const q = encodeURIComponent(name);
  const [ms, points, hist, drills, tests] = await Promise.all([call('GET', 'machines'), call('GET', 'machines/' + q + '/points'), call('GET', 'machines/' + q + '/history'),
    call('GET', 'drills').catch(() => []), call('GET', 'test-failovers?machine=' + q).catch(() => [])]);
  const dr = drillsOf(drills)[name];
  updateTestChoices(tests);
  const m = ms.find(x => x.name === name);
  if (!m) return el('p', { class: 'error' }, 'No machine ' + name + '. ', el('a', { href: '#/' }, 'Back to the machines.'));
  updatePointChoices(points);
  const churn = hist.map((s, i) => ({ time: s.time, v: i === 0 ? null : Math.max(0, s.segments - hist[i - 1].segments) }));
  const app = lastApp(points);
  const fo = m.failover;
  return el('div', null,
    el('h1', null, 'Machine ', m.name),
    el('p', null, 'State: ', el('strong', null, m.state), ' · RPO lag ', el('strong', { id: 'lag' }, fmtDur(lagOf(m))),
      ' · last point ', m.latest_point ? fmtTime(m.latest_point.time) : 'none', ' · last app point ', app ? fmtTime(app.time) : 'none',
      ' · process server ', m.process_server || '-', ' · last seen ', fmtTime(m.last_seen)),
    (m.alerts.length + m.problems.length) ? el('div', null, el('h2', null, 'Alerts'),
      el('ul', null, m.alerts.map(alertItem), m.problems.map(p => el('li', null, 'PROBLEM ', p)))) : null,
    el('h2', null, 'Disks'),
    el('table', null, el('thead', null, el('tr', null, ['Disk', 'Size', 'Received (next segment)', 'Applied', 'State'].map(t => el('th', null, t)))),
      el('tbody', null, m.disks.map(d => el('tr', null, el('td', null, d.disk), el('td', null, fmtSize(d.size)), el('td', null, d.next_seq),
        el('td', null, d.applied ? d.applied_seq : 'none'), el('td', null, diskText(d)))))),
    el('h2', null, 'RPO lag (age of the newest point)'), lineChart('RPO lag over the kept history', hist, s => s.lag_seconds, 's'),
    el('h2', null, 'Churn (segments received per sample)'), lineChart('Segments received per sample', churn, s => s.v, 'segments'),
    el('h2', null, 'Recovery points (' + points.length + ')'), timeline(points),
    el('table', { id: 'points' }, el('thead', null, el('tr', null, ['Point', 'Time', 'Kind', 'Disks', 'Materializable', 'Freeze'].map(t => el('th', null, t)))),
      el('tbody', null, points.slice().reverse().map(p => el('tr', null, el('td', null, p.id), el('td', null, fmtTime(p.time)), el('td', null, p.kind),
        el('td', null, p.disks.join(', ')), el('td', null, p.materializable ? 'yes' : 'no (merged)'), el('td', null, p.freeze_seconds ? p.freeze_seconds.toFixed(3) + ' s' : '-'))))),
    el('h2', null, 'Failover history'),
    fo ? el('p', null, 'Failed over to point ', fo.point.id, ' (', fo.point.kind, ', ', fmtTime(fo.point.time), ') at ', fmtTime(fo.time), ' into ', fo.out,
      m.committed ? '; committed at ' + fmtTime(m.committed) : '; not committed') : el('p', null, 'No real failover.'),
    m.failback ? el('p', null, 'Failback: ', m.failback.state, ' (', m.failback.phase, ')') : null,
    el('h2', null, 'Test failovers whose images are kept (' + tests.length + ')'),
    tests.length ? table('tests', ['Test failover', 'Point', 'Time', 'Images'], tests.slice().reverse().map(x => el('tr', null,
      el('td', null, x.id), el('td', null, x.point.id + ' (' + x.point.kind + ')'), el('td', null, fmtTime(x.time)),
      el('td', null, el('ul', null, x.images.map(im => el('li', null, im.path, ' (', fmtSize(im.size), ')'))))))) :
      el('p', { id: 'tests' }, 'None: every test failover\'s images were cleaned up.'),
    el('h2', null, 'Drills and boot-verified test failovers'),
    el('dl', { id: 'drills' },
      el('dt', null, 'Drills'), el('dd', null, dr && dr.policy.interval_seconds > 0 ? 'every ' + fmtDur(dr.policy.interval_seconds) + ', next ' + fmtTime(dr.next) +
        (dr.policy.verify ? ', verify ' + dr.policy.verify : '') : 'off (lifeboat drill set ' + name + ' --interval 24h)', dr && dr.running ? ' · RUNNING now' : ''),
      el('dt', null, 'Last drill'), el('dd', null, bootLine(dr && dr.last_drill)),
      el('dt', null, 'Last passing drill'), el('dd', null, dr && dr.last_pass ? fmtTime(dr.last_pass) : 'none'),
      el('dt', null, 'Last boot-verified test failover'), el('dd', { id: 'last-boot-test' }, bootLine(dr && dr.last_boot_test))));
}

async function alertsPage() {
  const a = await call('GET', 'alerts');
  const row = x => el('tr', null, el('td', { class: x.severity }, x.severity.toUpperCase()), el('td', null, x.machine || '(server)'),
    el('td', null, x.alert), el('td', null, x.message, el('span', { class: 'remedy' }, x.remedy)), el('td', null, fmtTime(x.since)));
  const head = el('thead', null, el('tr', null, ['Severity', 'Machine', 'Alert', 'What and what to do', 'Since'].map(t => el('th', null, t))));
  return el('div', null, el('h1', null, 'Alerts'), el('p', null, 'Evaluated ', fmtTime(a.evaluated)),
    el('h2', null, 'Active (' + a.active.length + ')'), a.active.length ? el('table', null, head, el('tbody', null, a.active.map(row))) : el('p', null, 'None.'),
    el('h2', null, 'Cleared since the server started'), a.cleared.length ? el('table', null, head.cloneNode(true), el('tbody', null, a.cleared.map(row))) : el('p', null, 'None.'));
}

async function auditPage() {
  const es = await call('GET', 'audit');
  return el('div', null, el('h1', null, 'Audit log'), el('p', null, 'The newest 200 entries, newest first; all of them: lifeboat audit.'),
    el('table', { id: 'audit' }, el('thead', null, el('tr', null, ['Time', 'Who', 'Action', 'On', 'Result', 'From'].map(t => el('th', null, t)))),
      el('tbody', null, es.slice().reverse().map(e => el('tr', null, el('td', null, fmtTime(e.time)), el('td', null, e.user), el('td', null, e.action),
        el('td', null, e.target || '-'), el('td', null, e.result), el('td', null, e.remote || '-'))))));
}

function table(id, heads, rows) {
  return el('table', { id }, el('thead', null, el('tr', null, heads.map(t => el('th', null, t)))), el('tbody', null, rows));
}

async function serversPage() {
  const ss = await call('GET', 'servers');
  return el('div', null, el('h1', null, 'Process servers'),
    ss.length === 0 ? el('p', null, 'No process server: run the configuration server with the process role, or join one with lifeboat-server init --join.') :
      table('servers', ['Server', 'Address', 'Roles', 'Machines', 'Health', 'Last heartbeat', 'Problems'], ss.map(x => el('tr', null,
        el('td', null, x.id + (x.local ? ' (local)' : '')), el('td', null, x.address || '-'), el('td', null, (x.roles || []).join(', ') || '-'),
        el('td', null, (x.machines || []).join(', ') || 'none'), el('td', null, x.healthy ? 'healthy' : 'UNHEALTHY'),
        el('td', null, x.local ? '-' : fmtTime(x.last_heartbeat)), el('td', null, (x.problems || []).join('; ') || 'none')))));
}

async function plansPage() {
  const [plans, groups] = await Promise.all([call('GET', 'plans'), call('GET', 'groups')]);
  return el('div', null, el('h1', null, 'Recovery plans'),
    plans.length === 0 ? el('p', null, 'No recovery plan (lifeboat plan create).') :
      table('plans', ['Plan', 'Groups, in order', 'Scripts', 'Created'], plans.map(p => el('tr', null, el('td', null, p.name),
        el('td', null, p.groups.map((g, i) => (i + 1) + ': ' + g.join(', ')).join(' → ')),
        el('td', null, (p.scripts || []).map(x => 'after ' + x.after_group + ': ' + x.path).join('; ') || 'none'), el('td', null, fmtTime(p.created))))),
    el('h1', null, 'Replication groups'),
    groups.length === 0 ? el('p', null, 'No replication group (lifeboat group create).') :
      table('groups', ['Group', 'Machines (coordinator first)', 'Interval', 'Points', 'Latest group point', 'Problems'], groups.map(g => el('tr', null,
        el('td', null, g.name), el('td', null, g.machines.join(', ')), el('td', null, fmtDur(g.interval_seconds)), el('td', null, g.points),
        el('td', null, g.latest_point ? g.latest_point.id + ' ' + fmtTime(g.latest_point.time) : 'none'),
        el('td', null, (g.problems || []).join('; ') || 'none')))));
}

// ---- actions (machine page) ----
function pointSelect(name) {
  return el('select', { name, 'data-points': '' }, el('option', { value: 'latest' }, 'latest'), el('option', { value: 'latest-app' }, 'latest-app'));
}

function updatePointChoices(points) {
  for (const s of document.querySelectorAll('select[data-points]')) {
    const want = ['latest', 'latest-app'].concat(points.filter(p => p.materializable).map(p => p.id)).join('|');
    if (s.dataset.have === want) continue;
    const cur = s.value;
    s.replaceChildren(el('option', { value: 'latest' }, 'latest'), el('option', { value: 'latest-app' }, 'latest-app'),
      ...points.filter(p => p.materializable).reverse().map(p => el('option', { value: p.id }, p.id + ' (' + p.kind + ', ' + fmtTime(p.time) + ')')));
    s.value = cur;
    if (!s.value) s.value = 'latest';
    s.dataset.have = want;
  }
}

function updateTestChoices(tests) {
  for (const s of document.querySelectorAll('select[data-tests]')) {
    const want = tests.map(x => x.id).join('|');
    if (s.dataset.have === want) continue;
    const cur = s.value;
    s.replaceChildren(...tests.slice().reverse().map(x => el('option', { value: x.id }, x.id + ' (point ' + x.point.id + ', ' + x.out + ')')));
    s.value = cur;
    if (!s.value && tests.length) s.value = tests[tests.length - 1].id;
    s.dataset.have = want;
  }
}

function cleanupView(r) {
  return el('div', { 'data-cleaned': r.id }, el('p', null, 'Test failover ', r.id, ' of ', r.machine, ' cleaned up: ', r.removed.length, ' image(s) removed',
    r.missing.length ? ', ' + r.missing.length + ' already gone' : '', r.kept.length ? ', ' + r.kept.length + ' kept (a real failover uses them)' : '',
    r.out_removed ? '; its emptied directory removed.' : '.'),
    el('ul', null, r.removed.map(p => el('li', null, 'removed ', p)), r.kept.map(p => el('li', null, 'kept ', p))));
}

function resultView(r) {
  return el('div', null,
    el('p', null, (r.test ? 'Test failover' : 'Failover') + ' of ', r.machine, ' to point ', r.point.id, ' (', r.point.kind, ', ', fmtTime(r.point.time), ') done in ',
      r.duration_seconds.toFixed(1), ' s. Check: ', r.checks.length ? (r.check_ok ? 'PASSED' : 'FAILED') : 'not asked', '. State now: ', r.state, '.'),
    el('ul', null, r.images.map(im => el('li', null, im.disk, ': ', im.path, ' (', fmtSize(im.size), ')'))),
    r.checks.length ? el('table', null, el('thead', null, el('tr', null, ['Disk', 'Partition', 'Filesystem', 'Result', 'Summary'].map(t => el('th', null, t)))),
      el('tbody', null, r.checks.map(c => el('tr', null, el('td', null, c.disk), el('td', null, c.partition), el('td', null, c.type || '-'),
        el('td', null, c.ok ? c.result : c.result.toUpperCase()), el('td', null, c.summary))))) : null);
}

function bootView(r) {
  return el('div', { 'data-boot': r.pass ? 'pass' : 'fail' },
    el('p', null, (r.drill ? 'Drill' : 'Boot-verified test failover') + ' of ', r.machine, ' at point ', r.point.id, ' (', r.point.kind, ', ', fmtTime(r.point.time), '): ',
      el('strong', null, r.pass ? 'PASS' : 'FAIL'), r.pass ? '' : ': ' + r.reason),
    el('p', null, 'Materialize ', fmtDur(r.materialize_seconds), ', boot to ready ', fmtDur(r.boot_to_ready_seconds), ', verify ', r.verify ? fmtDur(r.verify_seconds) : '-',
      ', total ', fmtDur(r.total_seconds), '. Firmware ', r.firmware || '-', ', bus ', r.bus || (r.buses || []).join(' then ') || '-', ', ', r.accel || '-', ', network ', r.net || 'none', '.'),
    r.console_log ? el('p', null, 'Console log on the server: ', r.console_log) : null,
    r.console_tail ? el('pre', null, r.console_tail) : null,
    r.vm ? el('p', null, 'VM ', r.vm.id, ' kept running: console socket ', r.vm.console_socket, ' (lifeboat vms stop ', r.vm.id, ')') : null);
}

function bookmarkView(r) {
  const steps = 'asked ' + fmtTime(r.asked) + ', picked up by the agent ' + fmtTime(r.picked) + ', reported ' + fmtTime(r.done) + '.';
  if (!r.ok) return el('div', null, el('p', null, 'Bookmark of ', r.machine, ' FAILED: ', r.error, el('span', { class: 'remedy' }, r.hint || '')), el('p', null, steps));
  return el('div', null, el('p', { 'data-bookmark': r.point.id }, 'Bookmark of ', r.machine, ': point ', r.point.id, ' (', r.point.kind, ', ', fmtTime(r.point.time), ') ',
    r.listed ? 'listed by the server.' : 'taken but NOT listed yet: ' + (r.hint || '')), el('p', null, steps));
}

// runAction runs an action and shows its result in out; progress, if
// given, is asked every second while it runs and gives a line to show.
async function runAction(out, what, path, body, show, progress) {
  const t = new Date();
  const line = el('p', { class: 'progress' });
  out.replaceChildren(el('p', null, what + ': running since ' + fmtTime(t) + '…'), line);
  let done = false;
  const tick = async () => {
    if (done) return;
    try { const p = await progress(); if (!done) line.textContent = p; } catch (e) { /* the result will say */ }
    if (!done) setTimeout(tick, 1000);
  };
  if (progress) tick();
  try {
    const r = await call('POST', path, body);
    done = true;
    out.replaceChildren(show ? show(r) : r && r.point ? resultView(r) : el('p', null, what + ': done.'));
  } catch (err) {
    done = true;
    out.replaceChildren(el('p', null, what + ' failed.'), errorBox(err));
  }
  refresh();
}

async function bookmarkProgress(q) {
  const st = await call('GET', 'machines/' + q + '/bookmark');
  if (!st.pending) return '';
  return st.picked ? 'Picked up by the agent at ' + fmtTime(st.picked) + ': it is cutting the point and waiting until the server lists it.' :
    'Waiting for the agent to pick the request up (it asks the server every 2 s).';
}

function renderActions(h) {
  const box = document.getElementById('actions');
  box.replaceChildren();
  box.hidden = true;
  if (h === '#/plans' && state.session.role === 'operator') {
    box.hidden = false;
    const gpOut = el('div', { id: 'group-point-result', role: 'status' });
    const gpForm = el('form', { id: 'group-point-form' },
      el('label', null, 'Replication group', el('input', { name: 'group', required: true, autocomplete: 'off' })),
      el('button', { type: 'submit' }, 'Take a group point'));
    gpForm.addEventListener('submit', ev => {
      ev.preventDefault();
      const g = ev.target.group.value;
      runAction(gpOut, 'Group point of ' + g, 'groups/' + encodeURIComponent(g) + '/point', {}, r => el('p', null,
        r.ok ? 'Group point ' + r.id + ' of ' + r.group + ' taken at ' + fmtTime(r.time) + '.' :
          'Group point of ' + r.group + ' FAILED in phase ' + r.phase + ': ' + r.error + (r.failed && r.failed.length ? ' (members: ' + r.failed.join(', ') + ')' : '')));
    });
    box.append(el('h2', null, 'Actions'),
      el('fieldset', null, el('legend', null, 'Group point (the agents freeze, cut and thaw together; asked through the server)'), gpForm, gpOut));
    return;
  }
  if (!h.startsWith('#/m/')) return;
  box.hidden = false;
  const name = decodeURIComponent(h.slice(4));
  const q = encodeURIComponent(name);
  if (state.session.role !== 'operator') {
    box.append(el('h2', null, 'Actions'), el('p', null, 'Your account is a viewer: bookmarks, failover and commit need an operator account (lifeboat users add NAME --role operator).'));
    return;
  }
  const bmOut = el('div', { id: 'bookmark-result', role: 'status' });
  const bmForm = el('form', { id: 'bookmark-form' },
    el('label', null, el('span', null, 'App-consistent (scripts and a freeze)'), el('input', { name: 'app', type: 'checkbox' })),
    el('button', { type: 'submit' }, 'Take a bookmark'));
  bmForm.addEventListener('submit', ev => {
    ev.preventDefault();
    runAction(bmOut, 'Bookmark of ' + name + ' (asked through the server: its agent picks the request up within seconds, then cuts the point and waits until the server lists it)',
      'machines/' + q + '/bookmark', { app: ev.target.app.checked }, bookmarkView, () => bookmarkProgress(q));
  });
  const testOut = el('div', { id: 'test-result', role: 'status' });
  const testForm = el('form', { id: 'test-form' },
    el('label', null, 'Point', pointSelect('point')),
    el('label', null, 'Output directory on the server (optional with boot)', el('input', { name: 'out', placeholder: '/var/lib/lifeboat/drills/' + name })),
    el('label', null, el('span', null, 'Check filesystems'), el('input', { name: 'check', type: 'checkbox', checked: true })),
    el('label', null, el('span', null, 'Boot it in a VM (qemu; no network)'), el('input', { name: 'boot', type: 'checkbox' })),
    el('label', null, el('span', null, 'Isolated network with one forwarded port'), el('input', { name: 'net', type: 'checkbox' })),
    el('label', null, 'Ready when the console matches (default: a login prompt)', el('input', { name: 'ready', autocomplete: 'off' })),
    el('label', null, 'Boot timeout in seconds (default 600 under TCG)', el('input', { name: 'timeout', type: 'number', min: 1 })),
    el('label', null, 'Verify script on the server', el('input', { name: 'verify', autocomplete: 'off' })),
    el('button', { type: 'submit' }, 'Run test failover'));
  testForm.addEventListener('submit', ev => {
    ev.preventDefault();
    const f = ev.target;
    if (f.boot.checked) {
      runAction(testOut, 'Boot-verified test failover', 'machines/' + q + '/boot-test', { point: f.point.value, out: f.out.value, net: f.net.checked ? 'isolated' : '',
        ready: f.ready.value, timeout_seconds: Number(f.timeout.value) || 0, verify: f.verify.value }, bootView);
      return;
    }
    runAction(testOut, 'Test failover', 'machines/' + q + '/failover', { point: f.point.value, test: true, out: f.out.value, check: f.check.checked });
  });
  const clOut = el('div', { id: 'cleanup-result', role: 'status' });
  const clForm = el('form', { id: 'cleanup-form' },
    el('label', null, 'Test failover', el('select', { name: 'test', 'data-tests': '' })),
    el('button', { type: 'submit' }, 'Remove its images'));
  clForm.addEventListener('submit', ev => {
    ev.preventDefault();
    const id = ev.target.test.value;
    if (!id) { clOut.replaceChildren(el('p', null, 'No test failover to clean up.')); return; }
    runAction(clOut, 'Cleanup of test failover ' + id, 'test-failovers/' + encodeURIComponent(id) + '/cleanup', {}, cleanupView);
  });
  const drOut = el('div', { id: 'drill-result', role: 'status' });
  const drForm = el('form', { id: 'drill-form' }, el('button', { type: 'submit' }, 'Run a drill now'));
  drForm.addEventListener('submit', ev => {
    ev.preventDefault();
    runAction(drOut, 'Drill of ' + name, 'machines/' + q + '/drill/run', {}, st => st.last_drill ? bootView(st.last_drill) : el('p', null, 'No drill recorded.'));
  });
  const foOut = el('div', { id: 'failover-result', role: 'status' });
  const foForm = el('form', { id: 'failover-form' },
    el('label', null, 'Point', pointSelect('point')),
    el('label', null, 'Output directory on the server', el('input', { name: 'out', required: true })),
    el('label', null, el('span', null, 'Check filesystems first'), el('input', { name: 'check', type: 'checkbox', checked: true })),
    el('label', null, 'Type the machine name to confirm', el('input', { name: 'confirm', required: true, autocomplete: 'off' })),
    el('button', { type: 'submit' }, 'Fail over'));
  foForm.addEventListener('submit', ev => {
    ev.preventDefault();
    const f = ev.target;
    const msg = `Fail over machine ${name} to point ${f.point.value} into ${f.out.value}? The machine will be marked failed over.`;
    if (!window.confirm(msg)) return;
    runAction(foOut, 'Failover', 'machines/' + q + '/failover', { point: f.point.value, test: false, out: f.out.value, check: f.check.checked, confirm: f.confirm.value });
  });
  const cmOut = el('div', { id: 'commit-result', role: 'status' });
  const cmForm = el('form', { id: 'commit-form' },
    el('label', null, 'Type the machine name to confirm', el('input', { name: 'confirm', required: true, autocomplete: 'off' })),
    el('button', { type: 'submit' }, 'Commit the failover'));
  cmForm.addEventListener('submit', ev => {
    ev.preventDefault();
    const f = ev.target;
    if (!window.confirm(`Commit the failover of machine ${name}? The server will refuse its old source's replication from then on.`)) return;
    runAction(cmOut, 'Commit', 'machines/' + q + '/commit', { confirm: f.confirm.value });
  });
  box.append(el('h2', null, 'Actions'),
    el('fieldset', null, el('legend', null, 'Bookmark (a recovery point now, taken by the machine\'s agent)'), bmForm, bmOut),
    el('fieldset', null, el('legend', null, 'Test failover (replication goes on untouched)'), testForm, testOut),
    el('fieldset', null, el('legend', null, 'Clean up a test failover (removes only the images it wrote)'), clForm, clOut),
    el('fieldset', null, el('legend', null, 'Drill (boot-verified test failover of the latest point, with the machine\'s drill policy: lifeboat drill set)'), drForm, drOut),
    el('fieldset', null, el('legend', null, 'Failover'), foForm, foOut),
    el('fieldset', null, el('legend', null, 'Commit'), cmForm, cmOut));
}

// ---- start ----
document.getElementById('login-form').addEventListener('submit', login);
document.getElementById('logout').addEventListener('click', logout);
window.addEventListener('hashchange', route);
call('GET', 'session').then(s => { state.session = s; started(); }).catch(() => showLogin());
