// The topology check: each sink must be able to take every kind of record
// routed to it (a format that exists for the kind, or a record sink of it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkTopology } from '../../src/config/topology.js';
import type { SinkConfig } from '../../src/config/schema.js';

const ct = { name: 'ct', type: 'conntrack' as const };
const nf = { name: 'nf', type: 'nflog' as const };
const sink = (o: Record<string, unknown>): SinkConfig => ({ name: 'k', type: 'stdout', sources: [], output: [], ...o }) as unknown as SinkConfig;

describe('topology', () => {
  it('a line format serves each kind it exists for; without one, each kind its default', () => {
    assert.equal(checkTopology([ct, nf], [sink({ format: 'json' }), sink({}), sink({ format: 'logemu' }), sink({ format: 'ulogd-json' })]), undefined);
    assert.equal(checkTopology([ct, nf], [sink({ format: 'kernel', sources: ['nf'] }), sink({ format: 'vyos', sources: ['ct'] })]), undefined);
  });

  it('a format that cannot write a kind routed to it names the sink, the source and the formats there are', () => {
    assert.deepEqual(checkTopology([ct, nf], [sink({ format: 'json' }), sink({ format: 'vyos' })]), {
      key: 'sink[1].format',
      message: 'format "vyos" does not write packet logs, and source "nf" (nflog) sends them (formats of packet logs: logemu, ulogd-json, kernel, json; or name the sources the sink takes in `sources`)',
    });
    assert.match(checkTopology([ct], [sink({ format: 'kernel', sources: ['ct'] })])!.message, /^format "kernel" does not write conntrack events, .*conntrack, vyos, json, logemu, ulogd-json\)$/);
  });

  it('an unknown format lists the formats of the kinds the sink takes', () => {
    assert.deepEqual(checkTopology([ct], [sink({ format: 'xml' })]), { key: 'sink[0].format', message: 'must be one of "conntrack", "vyos", "json", "logemu", "ulogd-json"' });
    assert.match(checkTopology([ct, nf], [sink({ format: 'xml' })])!.message, /"ulogd-json", "kernel"$/);
  });

  it('a record sink takes only its kinds', () => {
    assert.equal(checkTopology([ct, nf], [sink({ type: 'pcap', sources: ['nf'] })]), undefined);
    assert.deepEqual(checkTopology([ct, nf], [sink({ type: 'pcap' })]), {
      key: 'sink[0]', message: 'a pcap sink takes packet logs, and source "ct" (conntrack) sends conntrack events (name the sources the sink takes in `sources`)',
    });
    assert.equal(checkTopology([ct, nf], [sink({ type: 'pcap', sources: ['ct'] })])!.key, 'sink[0].sources');
  });
});

describe('topology of flow records (records = "flows")', () => {
  const ctNoFlows = { name: 'quiet', type: 'conntrack' as const, flows: false };
  it('takes every conntrack source with flows when it names none, and only JSON', () => {
    assert.equal(checkTopology([ct, nf, ctNoFlows], [sink({ records: 'flows' })]), undefined);
    assert.equal(checkTopology([ct], [sink({ records: 'flows', format: 'json', sources: ['ct'] })]), undefined);
    assert.deepEqual(checkTopology([ct], [sink({ records: 'flows', format: 'conntrack' })]), {
      key: 'sink[0].format', message: 'flow records are written as one of "json"',
    });
  });
  it('a named source that keeps no flow records names sink[i].sources and says why', () => {
    assert.deepEqual(checkTopology([ct, nf], [sink({}), sink({ records: 'flows', sources: ['nf'] })]), {
      key: 'sink[1].sources', message: 'a sink with records = "flows" takes the flow records of conntrack sources, and source "nf" is a nflog source',
    });
    assert.deepEqual(checkTopology([ctNoFlows], [sink({ records: 'flows', sources: ['quiet'] })]), {
      key: 'sink[0].sources', message: 'source "quiet" has flows = false: it keeps no flow records for a sink with records = "flows" to take',
    });
    assert.deepEqual(checkTopology([nf, ctNoFlows], [sink({ records: 'flows' })]), {
      key: 'sink[0].records', message: '"flows" takes the flow records of conntrack sources, and there is none with flows = true',
    });
  });
  it('a pcap sink of flow records is refused by the schema, not here (it has no `records` key)', () => {
    // (the pcap sink's schema has no `records`: config-bounds tests the error line)
    assert.equal(checkTopology([nf], [sink({ type: 'pcap' })]), undefined);
  });
});
