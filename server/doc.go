// Package server is lifeboat-server: it composes the roles on one data
// directory (see docs/server.md for its files) and owns their lifecycle:
// Open binds the listeners of the roles it is given (TLS, the optional
// /metrics), writes server.json (server/statefile), and Close shuts them
// down. The roles:
//
//   - the configuration role (registration, the CA's use, tokens, the
//     machine records, policies, groups, plans, failover, the scale-out
//     coordination of process servers, the admin API, over HTTPS) is
//     server/configsrv: Registration, Tokens, Plans, Groups, Policies,
//     Failovers, Servers (the scale-out coordination: join, heartbeats,
//     assignment, move and its drain, GET /v1/servers and /v1/server) and
//     Status (the machines' status view: GET /v1/machines, their points,
//     the status an agent is answered with). They reach the machines and
//     the local process role through interfaces declared there, which
//     this package implements (cfgMachines and statusMachines in
//     config.go, localProc in servers.go). Its alerts (GET /v1/alerts,
//     also shown in a machine's status) are server/alerts, which reads
//     the records through alerts.Machines (alertMachines in config.go);
//   - the process role (the replication gateway of docs/protocol.md, over
//     mutual TLS 1.3: receive, verify, durable cache, acknowledge, apply)
//     is server/process; it reaches the machine records through
//     process.Machines (procMachines in process.go). A joined process
//     server's membership (join.json, heartbeats, assignments, drain,
//     epochs) is process.Membership, composed in scaleout.go
//     (memberMachines);
//   - the master-target role (failback sessions, at most one per
//     machine, driven through the configuration role's admin API) is
//     server/mastertarget; it reaches the records through
//     mastertarget.Machines (mtMachines in mastertarget.go) and refuses
//     to start off Linux.
//
// What stays here is composition and lifecycle: Config and its defaults,
// Open and Close (server.go), the route tables of both listeners
// (configHandler and checkAdmin in config.go, processHandler in
// process.go), the adapters that give each role what it declares, which
// process server serves a machine here (servesHere, checkAssigned in
// servers.go: the configuration server asks Servers.CheckLocal, a joined
// one its Membership), opening target storage and its cross-process
// locks for a shared store (store.go), and /metrics (metrics.go): it
// collects every role's view of every machine into one registry and
// observes the traffic of both listeners, so it belongs to no one role.
//
// Shared plumbing: server/httpapi (error answers with their hint, JSON
// helpers, log keys), server/recdir (the directories of JSON records:
// machines/, groups/, plans/, servers/), server/pki (the CA), server/statefile
// (server.json, readable by the CLI without linking the server).
//
// Recovery (configsrv.Failovers, Plans, Policies): the configuration role
// materializes a machine's disks at a point (store.Materialize), checks
// their filesystems read-only with recovery.Checker when asked, and records
// a real failover in the machine's record (DataDir/machines/<m>.json):
// protected → failed-over → committed. A committed machine's process-role
// requests are answered 410 until it registers again. The pruner (process
// role, process.Pruner) applies each protected machine's retention policy to target
// storage every Config.PruneInterval; its errors are logged and shown in
// the machine's problems, never fatal. Recovery plans (DataDir/plans/) fail
// over machines group by group and run scripts between groups. The
// orchestration lives in the configuration role (server/configsrv); image
// inspection lives in recovery/ (docs/ARCHITECTURE.md §7 and §8 put all of
// recovery there: the orchestration moves once failback needs it too).
//
// Scale-out (configsrv.Servers: configuration role; process.Membership:
// joined process server; store.go: the shared store's locks). Process servers that join with the registration passphrase get
// a certificate "lifeboat-server:<id>" from the CA, report every 2 s and
// learn the machines assigned to them; only the assigned server accepts a
// machine's process-role requests. The replica is kept over a move by
// sharing target storage (--store on a shared file system, opened with
// --shared-store) rather than by copying it between servers: a copy costs
// the size of every disk per move and needs a second, consistent transfer
// protocol, while a shared store costs nothing at the move and is what the
// planned Azure Blob backend gives anyway. A move drains the old server
// first (no upload accepted after the mark, every acknowledged segment
// applied), then flips the assignment; a drained joined server refuses the
// machine until it is assigned it again with a larger epoch, so a stale
// heartbeat answer cannot revive it. Each machine has one writer; prune
// (assigned server) and materialize (configuration server) exclude each
// other across processes with flock.
//
// What it must never do:
//   - acknowledge a segment before it is durable and verified, or change
//     anything already accepted because of a bad request;
//   - let a machine write anything but its own disks: the machine is always
//     the client certificate's CommonName, never a name from a URL or body;
//   - let an agent certificate use the admin API, or the admin certificate
//     replicate;
//   - use a name from the network as a path element before api.ValidName
//     has accepted it;
//   - change a machine's state on a test failover, or on a real failover
//     whose requested check failed; accept anything from a committed
//     machine's old source;
//   - write to a materialized image while checking it;
//   - accept or apply a machine's segments on a process server it is not
//     assigned to, or acknowledge a segment during a move's drain.
package server
