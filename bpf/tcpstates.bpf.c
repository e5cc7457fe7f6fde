// SPDX-License-Identifier: GPL-2.0
// conntrail's TCP state change probe: one record per change of a TCP
// socket's state (the sock:inet_sock_set_state tracepoint, attached as a
// BTF-enabled raw tracepoint, so tracefs need not be mounted), with the
// process current at the change, the socket's addresses and ports, its
// network namespace, its cookie and the time since its previous change.
// Records go to a ring buffer; a record that finds the ring full is counted
// (per CPU), never silently dropped. Filters are set by user space in the
// `config` map and the port maps before the program is attached.
//
// The kernel types are declared here with only the fields used, and
// preserve_access_index: libbpf relocates every access against the running
// kernel's BTF (CO-RE), so no generated vmlinux.h is needed.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define TCP_CLOSE 7

struct in6_addr {
  union {
    __u8 u6_addr8[16];
  } in6_u;
} __attribute__((preserve_access_index));

struct ns_common {
  unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
  struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
  struct net *net;
} possible_net_t;

struct sock_common {
  __be32 skc_daddr;
  __be32 skc_rcv_saddr;
  __be16 skc_dport;
  __u16 skc_num;
  unsigned short skc_family;
  possible_net_t skc_net;
  struct in6_addr skc_v6_daddr;
  struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
  struct sock_common __sk_common;
  __u16 sk_protocol;
  __u8 sk_kern_sock : 1;  // a socket the kernel holds (CIFS, NFS, ...), even when opened in a user task
} __attribute__((preserve_access_index));

struct inet_sock {
  struct sock sk;
  __be16 inet_sport;
} __attribute__((preserve_access_index));

// Whether the current task is a kernel thread (ksoftirqd, a NAPI or MPTCP
// worker), and whether the socket is the kernel's own (sk_kern_sock: CIFS,
// NFS, iSCSI; it may be opened from a user task's mount(2)): user space
// names a socket's holder only from the changes a process's own system
// calls make on its own socket (connect, listen, close, shutdown), never
// from a kernel thread's nor on a kernel socket. (The preempt count would tell softirq
// context directly, but it is a per-CPU variable the verifier can only
// resolve with CONFIG_KALLSYMS_ALL; task->flags needs only BTF.)
#define PF_KTHREAD 0x00200000
struct task_struct {
  unsigned int flags;
} __attribute__((preserve_access_index));

// Must match src/sources/tcpstates/decode.ts.
struct event {
  __u64 ts_ns;     // CLOCK_MONOTONIC (bpf_ktime_get_ns)
  __u64 skaddr;
  __u64 delta_ns;  // since this socket's previous change (flags & 1: known)
  __u64 cookie;
  __u32 netns;     // the namespace's inode
  __u32 pid;       // thread group (process) current at the change
  __u32 tid;
  __u16 family;
  __u16 sport;     // host order
  __u16 dport;     // host order
  __u8 oldstate;
  __u8 newstate;
  __u8 flags;       // 1: delta_ns known; 2: the current task is a kernel thread; 4: a kernel socket
  __u8 pad[3];
  __u8 saddr[16];
  __u8 daddr[16];
  char comm[16];
};

// Must match the config written by src/sources/tcpstates/bpf.ts.
struct config {
  __u16 family;      // 0: both
  __u8 by_sport;     // only local ports in `sports`
  __u8 by_dport;     // only remote ports in `dports`
  __u32 pid;         // 0: any process
  __u32 netns;       // 0: any namespace
  __u8 by_comm;
  __u8 by_netns;     // only namespaces in `netnses` (followed by pattern)
  __u8 pad[2];
  char comm[16];
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct config);
} config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u16);
  __type(value, __u8);
} sports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u16);
  __type(value, __u8);
} dports SEC(".maps");

// the inodes of the namespaces a pattern follows, as they come and go
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u32);
  __type(value, __u8);
} netnses SEC(".maps");

// when each socket last changed state (user space may resize it)
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, __u64);
} last_change SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 4 * 1024 * 1024);
} events SEC(".maps");

// records that found the ring buffer full, per CPU
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} drops SEC(".maps");

static __always_inline int same_comm(const char *a, const char *b) {
#pragma unroll
  for (int i = 0; i < 16; i++) {
    if (a[i] != b[i]) return 0;
    if (a[i] == 0) return 1;
  }
  return 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(conntrail_tcp_state, struct sock *sk, int oldstate, int newstate) {
  __u32 zero = 0;
  struct config *cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg) return 0;
  if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP) return 0;
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
  if (family != AF_INET && family != AF_INET6) return 0;
  if (cfg->family && cfg->family != family) return 0;
  __u16 sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
  __u16 dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
  if (cfg->by_sport && !bpf_map_lookup_elem(&sports, &sport)) return 0;
  if (cfg->by_dport && !bpf_map_lookup_elem(&dports, &dport)) return 0;
  __u32 netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
  if (cfg->netns && cfg->netns != netns) return 0;
  if (cfg->by_netns && !bpf_map_lookup_elem(&netnses, &netns)) return 0;

  // when this socket last changed: kept for every change of a socket that
  // passes the per-socket filters above, before the per-process ones below
  // (a socket's changes run in different tasks: softirq, pid 0)
  __u64 key = (__u64)sk;
  __u64 now = bpf_ktime_get_ns();
  __u64 *last = bpf_map_lookup_elem(&last_change, &key);
  __u8 known = last ? 1 : 0;
  __u64 delta = last ? now - *last : 0;
  if (newstate == TCP_CLOSE)
    bpf_map_delete_elem(&last_change, &key);
  else
    bpf_map_update_elem(&last_change, &key, &now, BPF_ANY);

  __u64 id = bpf_get_current_pid_tgid();
  __u32 pid = id >> 32;
  if (cfg->pid && cfg->pid != pid) return 0;
  char comm[16];
  bpf_get_current_comm(comm, sizeof(comm));
  if (cfg->by_comm && !same_comm(comm, cfg->comm)) return 0;

  struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    __u64 *d = bpf_map_lookup_elem(&drops, &zero);
    if (d) *d += 1;
    return 0;
  }
  e->ts_ns = now;
  e->skaddr = key;
  struct task_struct *task = bpf_get_current_task_btf();
  e->flags = known | ((task->flags & PF_KTHREAD) ? 2 : 0) | (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_kern_sock) ? 4 : 0);
  e->delta_ns = delta;
  e->cookie = bpf_get_socket_cookie(sk);
  e->netns = netns;
  e->pid = pid;
  e->tid = (__u32)id;
  e->family = family;
  e->sport = sport;
  e->dport = dport;
  e->oldstate = oldstate;
  e->newstate = newstate;
  e->pad[0] = e->pad[1] = e->pad[2] = 0;
  __builtin_memcpy(e->comm, comm, sizeof(comm));
  if (family == AF_INET) {
    __builtin_memset(e->saddr, 0, sizeof(e->saddr));
    __builtin_memset(e->daddr, 0, sizeof(e->daddr));
    bpf_core_read(e->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
    bpf_core_read(e->daddr, 4, &sk->__sk_common.skc_daddr);
  } else {
    bpf_core_read(e->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
    bpf_core_read(e->daddr, 16, &sk->__sk_common.skc_v6_daddr);
  }
  bpf_ringbuf_submit(e, 0);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
