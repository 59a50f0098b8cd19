package datapath

// The BPF objects are generated with Debian's clang 14 and committed; CI regenerates them and
// fails on a diff.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel,bpfeb -type event -type policy_key -type policy_lpm_key -type policy_val -type ipcache_key -type ipcache_lpm_key -type ipcache_val -type ct_key -type ct_val ceskit bpf/ceskit.c -- -I./bpf/include -I./bpf
