// Package configsrv is the configuration role of lifeboat-server
// (docs/ARCHITECTURE.md §1): what the management server keeps and decides
// for the machines it protects, answered over the admin API and the
// registration endpoint.
//
// It owns:
//   - registration (Registration: POST /v1/register): an agent proves the
//     registration passphrase or a one-time token, gets its machine
//     certificate (Issuer), the CA and its process server
//     (RegisterMachines), and its record notes the registration; a
//     committed or failed-back machine registered again is protected anew
//     with that certificate only;
//   - the one-time registration tokens (DATA/tokens.json, Tokens: their
//     issue, listing, revocation and single use, and the handlers of
//     /v1/tokens);
//   - the recovery plans (DATA/plans/, Plans: their records and the
//     handlers of /v1/plans; a run fails over the machines group by group
//     through Failover, declared here, and runs the scripts between
//     groups, each in a process group of its own on Unix);
//   - the replication groups (DATA/groups/, Groups: their records, the
//     handlers of /v1/groups and of the agents' /v1/agent/group, where
//     members listen, the last outcome of each group, the operator's
//     pending group points, a group's failover at one group point). An
//     agent is known by its certificate, verified through ClientVerifier;
//     the machines are reached through GroupMachines;
//   - the retention policies' admin API (Policies: /v1/machines/{m}/policy
//     and /prune; the policy is kept in the machine's record, the prune
//     itself is the process role's pruner, reached through
//     PolicyMachines);
//   - failover and commit (Failovers: /v1/machines/{m}/failover and
//     /commit): a machine's disks materialized at a point, their
//     filesystems checked read-only when asked (ImageChecker), and a real
//     failover recorded in the machine's record, then its commit;
//   - the machines' status view (Status: GET /v1/machines and
//     /v1/machines/{m}/points, the machine of an admin URL, the status
//     the process role answers an agent with), reading the records, the
//     process role's disks and the failback through StatusMachines;
//   - the scale-out coordination (Servers, DATA/servers/: a process
//     server's join with the passphrase, its heartbeats and the
//     assignment they answer, the choice of a registering machine's
//     process server, a move with its drain of the old server, GET
//     /v1/servers and /v1/server), reaching the configuration server's
//     own process role through LocalProcess.
//
// The admin API's route table is wired by the composition
// (server/config.go), which also checks the administrator's certificate.
//
// What it must never do: import the composition (server) or another
// role's package; register a machine whose proof it has not checked, or
// name a machine "admin"; keep a used, revoked or expired token usable, also
// across a restart; show a token's secret anywhere but in the answer
// that issued it; run a plan twice at once, or change or delete a plan
// while it runs; tell an agent of a group it is not in; accept a group
// point's outcome from any machine but the group's coordinator; change a
// machine's state on a test failover, or on a real one whose requested
// check failed; write to an image while checking it; let a process
// server report with a certificate of an earlier join; flip a machine's
// assignment before the old process server applied what it acknowledged
// (unless forced).
package configsrv
