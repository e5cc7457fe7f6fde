// The conntrack source's configuration: its keys, defaults and docs (the
// daemon's schema is assembled from each component's own).
import { NETNS_PROP, RCVBUF_MAX, RCVBUF_MIN } from '../source.js';

export interface ConntrackSourceConfig {
  name: string;
  type: 'conntrack';
  netns?: string;
  buffer_size: number;
  batch_delay_ms: number;
  buffer_max: number;
  resync: boolean;
  sync_at_start: boolean;
  enable_accounting: boolean;
  enable_timestamps: boolean;
  reliable: boolean;
  flows: boolean;
  enable_events: boolean;
  events: Array<'new' | 'update' | 'destroy'>;
  family?: 'ipv4' | 'ipv6';
  proto: Array<string | number>;
  not_proto: Array<string | number>;
  src: string[];
  dst: string[];
  not_src: string[];
  not_dst: string[];
  port: string[];
  not_port: string[];
  mark: string[];
  zone: number[];
}

const strList = (description: string) => ({ type: 'array', items: { type: 'string' }, default: [], description });

export const CONNTRACK_SOURCE_SCHEMA = {
  type: 'object',
  description: 'A conntrack event source: one netlink subscription in one network namespace, with its filters (evaluated in the kernel where possible, as for `conntrail events`).',
  additionalProperties: false,
  required: [],
  properties: {
    name: { type: 'string', minLength: 1, default: 'conntrack', description: 'Name that sinks refer to in `sources`.' },
    type: { const: 'conntrack', default: 'conntrack', description: 'The kind of source (conntrack events).' },
    netns: NETNS_PROP,
    buffer_size: { type: 'integer', minimum: RCVBUF_MIN, maximum: RCVBUF_MAX, default: 16777216, description: 'Netlink receive buffer to ask for, in bytes (at most 1 GiB: the kernel doubles the value and keeps it in an int).' },
    batch_delay_ms: { type: 'integer', minimum: 0, maximum: 1000, default: 1, description: 'After a wake-up, wait this long before reading again.' },
    buffer_max: { type: 'integer', minimum: RCVBUF_MIN, maximum: RCVBUF_MAX, default: 268435456, description: 'After an overrun (ENOBUFS) the receive buffer grows at once to what the burst needed (eight times its size, or twice what was queued and dropped, whichever is more), up to this many bytes (at least `buffer_size`, at most 1 GiB). A limit, not memory: the kernel uses only what is queued.' },
    resync: { type: 'boolean', default: true, description: 'After an overrun, dump the conntrack table and pass every entry on (as `dump` records), so the flows open after the loss are known again.' },
    sync_at_start: { type: 'boolean', default: false, description: 'At start, dump the table and pass every entry on (as `dump` records), so flows that began earlier are known.' },
    enable_accounting: { type: 'boolean', default: false, description: 'At start, turn on nf_conntrack_acct in the source\'s namespace (packet and byte counters on DESTROY), and say so in the log.' },
    enable_timestamps: { type: 'boolean', default: false, description: 'At start, turn on nf_conntrack_timestamp in the source\'s namespace (start/stop times, so DESTROY carries the duration), and say so in the log.' },
    reliable: { type: 'boolean', default: false, description: 'Reliable event delivery (NETLINK_BROADCAST_ERROR + NETLINK_NO_ENOBUFS): the kernel keeps an event it cannot deliver and retries it, which can make it drop packets instead of events under extreme load.' },
    flows: { type: 'boolean', default: true, description: 'Feed the flow store with this source\'s flows (one record per flow). Only one source per network namespace may: set `false` on the others.' },
    enable_events: { type: 'boolean', default: true, description: 'With `flows`: at start, set nf_conntrack_events to 1 in the source\'s namespace (and say so in the log), so that connections that begin while no listener runs (the daemon restarting) still report their end; by default (2) the kernel gives them no events at all. Flows the daemon first sees in a table dump are checked by further dumps until they end.' },
    events: { type: 'array', items: { enum: ['new', 'update', 'destroy'] }, minItems: 1, uniqueItems: true, default: ['new', 'update', 'destroy'], description: 'Event types to subscribe to.' },
    family: { enum: ['ipv4', 'ipv6'], description: 'Only this address family.' },
    proto: { type: 'array', items: { type: ['string', 'integer'] }, default: [], description: 'Only these layer-4 protocols (names or numbers).' },
    not_proto: { type: 'array', items: { type: ['string', 'integer'] }, default: [], description: 'Never these protocols.' },
    src: strList('Original source in one of these addresses or CIDRs.'),
    dst: strList('Original destination in one of these addresses or CIDRs.'),
    not_src: strList('Original source in none of these.'),
    not_dst: strList('Original destination in none of these.'),
    port: strList('A port of either tuple in one of these ports or ranges ("80", "1000-2000").'),
    not_port: strList('No port of either tuple in these.'),
    mark: strList('Connection mark: "VALUE[/MASK]", any of them.'),
    zone: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 65535 }, default: [], description: 'Conntrack zones, any of them.' },
  },
} as const;
