// The kinds of record, and the type of each: the only things that cross
// from sources to the pipeline, and from the pipeline to formats and sinks.
import type { FlowEvent } from './event.js';
import type { EndedFlow } from './flow.js';
import type { AggregateRecord } from './aggregate.js';
import type { PacketLog } from './packet.js';
import type { TcpStateChange } from './tcpstate.js';

export interface RecordOf {
  /** a conntrack event or table entry (sources/conntrack) */
  event: FlowEvent;
  /** one record per flow, at its end (the flow table of a conntrack source) */
  flow: EndedFlow;
  /** a packet an NFLOG rule logged (sources/nflog) */
  packet: PacketLog;
  /** a TCP socket's state change, with the process current at it (sources/tcpstates) */
  tcpstate: TcpStateChange;
  /** flows folded by an aggregation stage (pipeline/aggregate.ts) */
  aggregate: AggregateRecord;
}
export type Kind = keyof RecordOf;
export const KINDS: readonly Kind[] = ['event', 'flow', 'packet', 'tcpstate', 'aggregate'];
/** for messages: "conntrack events", ... */
export const KIND_NAMES: Readonly<Record<Kind, string>> = { event: 'conntrack events', flow: 'flow records', packet: 'packet logs', tcpstate: 'TCP state changes', aggregate: 'aggregated flow records' };
