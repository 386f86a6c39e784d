package bpf

// The objects and bindings are committed; `make generate` reruns this.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -Wpadded -mcpu=v3" -target bpfel -type lb_event -type lb_cut_args -type lb_disk_cfg -type lb_disk_stats -type lb_state -type lb_inflight -type lb_cpu_local -type lb_disk_fast Tracker tracker.bpf.c
