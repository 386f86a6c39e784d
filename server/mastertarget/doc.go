// Package mastertarget is the master-target role of lifeboat-server: it
// owns the failback sessions, at most one per machine, and runs them with
// recovery.Failback on this host, where the on-premises disks are. It is
// driven through the configuration role's admin API (API: the failback
// endpoints of docs/protocol.md) and reaches the machine records through
// Machines, which the server that composes the roles provides. Sessions
// live in memory: a restart ends them, and the next start compares again
// and sends only what still differs (docs/ARCHITECTURE.md §7).
//
// Failback tracks the recovered disks with the Linux eBPF tracker, so New
// refuses on any other system with an *UnsupportedError whose hint says
// to run the role on a Linux server; the package still builds everywhere.
//
// What it must never do:
//   - run two failbacks of one machine at once, or start one for a
//     machine that has not failed over;
//   - change a machine's record except to record a completed failback
//     (Machines.SetFailedBack);
//   - leave a session running after Close.
package mastertarget
