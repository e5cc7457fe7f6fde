// Every format by name and by the kind of record it accepts. The same name
// can serve two kinds ("json", "logemu", "ulogd-json" exist for conntrack
// events and for packet logs); a sink's format must exist for every kind of
// record routed to it, which the configuration checks before anything opens.
import type { Kind, RecordOf } from '../records/index.js';
import { FORMATS, makeFormatter } from './index.js';
import { makePacketFormatter, PACKET_FORMATS } from './packet/index.js';
import { makeTcpstateFormatter, TCPSTATE_FORMATS } from './tcpstates.js';
import { FLOW_FORMATS, makeFlowFormatter } from './flow.js';
import { AGGREGATE_FORMATS, makeAggregateFormatter } from './aggregate.js';

export interface FormatOptions {
  /** conntrack -o options */
  output?: readonly string[];
  /** -o labels: the connlabel.conf to read */
  labelmap?: string;
  /** the records come from another namespace */
  netns?: string;
  ulogdDevice?: string;
  ulogdEventv1?: boolean;
  /** ulogd-json of packets: as the stack with HWHDR */
  hwhdr?: boolean;
}

export interface FormatSpec<K extends Kind = Kind> {
  name: string;
  accepts: K;
  build(o: FormatOptions): (r: RecordOf[K]) => string;
}

const eventFormat = (name: (typeof FORMATS)[number]): FormatSpec<'event'> => ({
  name, accepts: 'event', build: (o) => makeFormatter({ ...o, format: name }),
});
const packetFormat = (name: (typeof PACKET_FORMATS)[number]): FormatSpec<'packet'> => ({
  name, accepts: 'packet', build: (o) => makePacketFormatter({ ...o, format: name }),
});

const tcpstateFormat = (name: (typeof TCPSTATE_FORMATS)[number]): FormatSpec<'tcpstate'> => ({
  name, accepts: 'tcpstate', build: () => makeTcpstateFormatter(name),
});

const flowFormat = (name: (typeof FLOW_FORMATS)[number]): FormatSpec<'flow'> => ({
  name, accepts: 'flow', build: () => makeFlowFormatter(name),
});

const aggregateFormat = (name: (typeof AGGREGATE_FORMATS)[number]): FormatSpec<'aggregate'> => ({
  name, accepts: 'aggregate', build: () => makeAggregateFormatter(name),
});

export const FORMAT_SPECS: ReadonlyArray<FormatSpec<'event'> | FormatSpec<'packet'> | FormatSpec<'tcpstate'> | FormatSpec<'flow'> | FormatSpec<'aggregate'>> = [
  ...FORMATS.map(eventFormat), ...PACKET_FORMATS.map(packetFormat), ...TCPSTATE_FORMATS.map(tcpstateFormat), ...FLOW_FORMATS.map(flowFormat),
  ...AGGREGATE_FORMATS.map(aggregateFormat),
];

/** every format name, of any kind */
export const FORMAT_NAMES: readonly string[] = [...new Set(FORMAT_SPECS.map((f) => f.name))];

/** a sink with no `format` writes each kind in this one */
export const DEFAULT_FORMAT: Readonly<Partial<Record<Kind, string>>> = { event: 'conntrack', packet: 'logemu', tcpstate: 'tcpstates', flow: 'json', aggregate: 'json' };

export function formatsOf(kind: Kind): string[] {
  return FORMAT_SPECS.filter((f) => f.accepts === kind).map((f) => f.name);
}

export function findFormat<K extends Kind>(name: string, kind: K): FormatSpec<K> | undefined {
  return FORMAT_SPECS.find((f) => f.name === name && f.accepts === kind) as FormatSpec<K> | undefined;
}
