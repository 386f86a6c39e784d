// Package console is the configuration role's web console
// (docs/console.md): the pages under /ui/ of the HTTPS API port, their
// login, the console's accounts (DATA/console/users.json: names, roles
// and bcrypt hashes), its sessions (in memory), the audit log
// (DATA/console/audit.log, one JSON line per action) and the bounded RPO
// lag history the machine page charts.
//
// It reads and acts only through the admin API's own handlers, given to
// it by the composition (API): a console page shows what GET /v1/machines
// shows, and a failover from the console is POST /v1/machines/{m}/failover
// behind the console's checks. It keeps no state of the machines.
//
// What it must never do:
//   - run an action without a logged-in session of the operator role and
//     the session's CSRF token, or without writing it to the audit log;
//   - keep a password, a password hash or a session token in a log, the
//     audit log or an answer (but the one that sets a chosen password);
//   - store a password other than as a bcrypt hash;
//   - set a session cookie that is not HttpOnly, Secure and SameSite=Strict;
//   - answer a login faster than its rate limit allows;
//   - import the composition (server) or another role's package.
package console
