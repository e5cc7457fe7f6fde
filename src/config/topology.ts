// The topology, checked before anything opens: which kind of record each
// source sends, and whether each sink can take every kind routed to it. A
// record sink (pcap) takes the kinds it encodes itself; a line sink's format
// must exist for every kind it takes (a sink without `format` writes each
// kind in that kind's default format). A sink with `records = "flows"` takes
// the flow records of conntrack sources instead of their events, and one
// with `aggregate` an aggregation stage's records. A problem names the key
// to fix.
import { KIND_NAMES, type Kind } from '../records/index.js';
import { DEFAULT_FORMAT, findFormat, FORMAT_NAMES, formatsOf } from '../formats/registry.js';
import { RECORD_SINKS, SOURCE_TYPES, type SinkConfig, type SourceType } from './schema.js';

/** The kind of record a source emits. */
export function sourceKind(s: { type: SourceType }): Kind {
  return SOURCE_TYPES[s.type].emits;
}

export interface TopologyProblem { key: string; message: string }

/** a source as the check needs it (`flows`: a conntrack source's, false: it keeps no flow table) */
export interface TopologySource { name: string; type: SourceType; flows?: boolean }

/** the sources a sink with `records = "flows"` takes: those it names, else every conntrack source with flows */
export function flowSourcesOf(k: Pick<SinkConfig, 'sources'>, sources: TopologySource[]): TopologySource[] {
  return k.sources.length ? sources.filter((s) => k.sources.includes(s.name)) : sources.filter((s) => s.type === 'conntrack' && s.flows !== false);
}

/** The first sink that cannot take what is routed to it, or undefined. */
export function checkTopology(sources: TopologySource[], sinks: SinkConfig[]): TopologyProblem | undefined {
  const byName = new Map(sources.map((s) => [s.name, s]));
  for (let i = 0; i < sinks.length; i++) {
    const k = sinks[i];
    // a sink of an aggregate's records: the loader checked the aggregate's sources; a line sink's format must write them
    if (k.aggregate !== undefined) {
      if (k.type !== 'ipfix' && k.format !== undefined && !findFormat(k.format, 'aggregate')) {
        return { key: `sink[${i}].format`, message: `aggregated flow records are written as one of ${formatsOf('aggregate').map((f) => JSON.stringify(f)).join(', ')}` };
      }
      continue;
    }
    if (k.records === 'flows') {
      const takes = flowSourcesOf(k, sources);
      const bad = takes.find((s) => s.type !== 'conntrack' || s.flows === false);
      if (bad) {
        return {
          key: `sink[${i}].sources`,
          message: bad.type !== 'conntrack'
            ? `${k.type === 'ipfix' ? 'an ipfix sink exports' : 'a sink with records = "flows" takes'} the flow records of conntrack sources, and source "${bad.name}" is a ${bad.type} source`
            : `source "${bad.name}" has flows = false: it keeps no flow records for a sink with records = "flows" to take`,
        };
      }
      if (!takes.length) {
        return k.type === 'ipfix'
          ? { key: `sink[${i}]`, message: 'an ipfix sink exports the flow records of conntrack sources, and there is none with flows = true' }
          : { key: `sink[${i}].records`, message: '"flows" takes the flow records of conntrack sources, and there is none with flows = true' };
      }
      if (k.type === 'ipfix') continue;
      if (k.format !== undefined && !findFormat(k.format, 'flow')) {
        return { key: `sink[${i}].format`, message: `flow records are written as one of ${formatsOf('flow').map((f) => JSON.stringify(f)).join(', ')}` };
      }
      continue;
    }
    const from = (k.sources.length ? k.sources : sources.map((s) => s.name)).map((n) => byName.get(n)).filter((s) => s !== undefined);
    const hint = k.sources.length ? '' : '; or name the sources the sink takes in `sources`';
    const recordKinds = RECORD_SINKS[k.type];
    if (recordKinds) {
      for (const s of from) {
        const kind = sourceKind(s);
        if (!recordKinds.includes(kind)) {
          return {
            key: k.sources.length ? `sink[${i}].sources` : `sink[${i}]`,
            message: `a ${k.type} sink takes ${recordKinds.map((x) => KIND_NAMES[x]).join(', ')}, and source "${s.name}" (${s.type}) sends ${KIND_NAMES[kind]}` +
              `${k.sources.length ? '' : ' (name the sources the sink takes in `sources`)'}`,
          };
        }
      }
      continue;
    }
    const takes = [...new Set(from.map(sourceKind))];
    // a name no kind has: the formats of the kinds this sink takes
    if (k.format !== undefined && !FORMAT_NAMES.includes(k.format)) {
      const known = [...new Set(takes.flatMap((kind) => formatsOf(kind)))];
      return { key: `sink[${i}].format`, message: `must be one of ${known.map((f) => JSON.stringify(f)).join(', ')}` };
    }
    for (const s of from) {
      const kind = sourceKind(s);
      const fmt = k.format ?? DEFAULT_FORMAT[kind];
      if (fmt === undefined || !findFormat(fmt, kind)) {
        return {
          key: k.format !== undefined ? `sink[${i}].format` : `sink[${i}]`,
          message: `${fmt === undefined ? 'no format' : `format "${fmt}" does not write ${KIND_NAMES[kind]}`}, and source "${s.name}" (${s.type}) sends them ` +
            `(formats of ${KIND_NAMES[kind]}: ${formatsOf(kind).join(', ')}${hint})`,
        };
      }
    }
  }
  return undefined;
}
