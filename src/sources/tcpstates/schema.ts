// The tcpstates source's configuration: its keys, defaults and docs (the
// daemon's schema is assembled from each component's own).

export interface TcpstatesSourceConfig {
  name: string;
  type: 'tcpstates';
  netns?: string;
  /** the loader's: `netns` was a pattern or a list (the namespaces followed, by their names under /run/netns) */
  follow?: string[];
  family: 'any' | 'ipv4' | 'ipv6';
  local_ports: number[];
  remote_ports: number[];
  pid?: number;
  comm?: string;
  ring_size: number;
  batch_delay_ms: number;
  store: boolean;
}

export const TCPSTATES_SOURCE_SCHEMA = {
  type: 'object',
  description: 'A TCP state change source: every change of a TCP socket\'s state with the process current at it, from the eBPF program `conntrail tcpstates` loads (needs BTF in the kernel, CAP_BPF and CAP_PERFMON, and libbpf and clang at install). One source sees every namespace unless `netns` names one.',
  additionalProperties: false,
  required: ['type'],
  properties: {
    name: { type: 'string', minLength: 1, default: 'tcpstates', description: 'Name that sinks refer to in `sources`.' },
    type: { const: 'tcpstates', description: 'The kind of source (TCP state changes, eBPF).' },
    netns: {
      type: ['string', 'array'], minLength: 1, minItems: 1, items: { type: 'string', minLength: 1 },
      description: 'Only sockets of this network namespace: an `ip netns` name, a path, or its inode number; or of the namespaces named by shell pattern under /run/netns (`"qrouter-*"`, `"*"`) or a list of names and patterns, followed as they come and go (the one program filters them by inode in the kernel). Default: every namespace.',
    },
    family: { enum: ['any', 'ipv4', 'ipv6'], default: 'any', description: 'Only this address family.' },
    local_ports: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 }, uniqueItems: true, maxItems: 1024, default: [], description: 'Only these local ports (as tcpstates -L); empty: all.' },
    remote_ports: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 }, uniqueItems: true, maxItems: 1024, default: [], description: 'Only these remote ports (as tcpstates -D); empty: all.' },
    pid: { type: 'integer', minimum: 1, maximum: 4194304, description: 'Only changes while this process is current.' },
    comm: { type: 'string', minLength: 1, maxLength: 15, description: 'Only changes while a task with this command is current.' },
    ring_size: { type: 'integer', enum: [65536, 131072, 262144, 524288, 1048576, 2097152, 4194304, 8388608, 16777216, 33554432, 67108864], default: 4194304, description: 'The ring buffer between the program and conntrail, bytes (a power of two). Changes that find it full are counted and reported, never silent.' },
    batch_delay_ms: { type: 'integer', minimum: 0, maximum: 1000, default: 1, description: 'After a wake-up, wait this long before reading again (under load one wake-up reads many changes).' },
    store: { type: 'boolean', default: true, description: 'Write the changes to the store (`[store]`, with its retention), for `conntrail tcpstates --db` and the processes `conntrail flows --process` and `who --process` show; `false`: to the sinks only.' },
  },
} as const;
