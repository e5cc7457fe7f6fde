// --format logemu and --format ulogd-json side by side with the real ulogd2
// (Debian's ulogd2 2.0.8 + ulogd2-json, NFCT -> IP2STR -> PRINTFLOW/LOGEMU
// and NFCT -> IP2STR -> JSON, run with their own config files) on the same
// traffic: the same records with the same keys and values, receipt times aside.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collect, Topology, waitFor, waitSubscribed } from '../helpers/netns.js';
import { mixedRules, mixedTraffic, reapExpired, shortTimeouts } from '../helpers/traffic.js';
import { CONNTRAIL } from '../helpers/cli.js';

function pluginDir(): string {
  for (const d of readdirSync('/usr/lib')) {
    const p = join('/usr/lib', d, 'ulogd');
    if (existsSync(join(p, 'ulogd_output_JSON.so'))) return p;
  }
  throw new Error('ulogd2 and ulogd2-json are not installed');
}

function config(dir: string, name: string, output: 'json' | 'emu', extra = ''): string {
  const pd = pluginDir();
  const plugins = output === 'json'
    ? ['inpflow_NFCT', 'filter_IP2STR', 'output_JSON']
    : ['inpflow_NFCT', 'filter_IP2STR', 'filter_PRINTFLOW', 'output_LOGEMU'];
  const stack = output === 'json' ? 'ct1:NFCT,ip2str1:IP2STR,out1:JSON' : 'ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,out1:LOGEMU';
  const path = join(dir, `${name}.conf`);
  writeFileSync(path, `[global]
logfile="${join(dir, `${name}.log`)}"
loglevel=3
${plugins.map((p) => `plugin="${pd}/ulogd_${p}.so"`).join('\n')}
stack=${stack}

[ct1]
hash_enable=0
event_mask=0x00000005

[out1]
file="${join(dir, `${name}.out`)}"
sync=1
${extra}
`);
  writeFileSync(join(dir, `${name}.out`), '');
  return path;
}

const lines = (s: string) => s.split('\n').filter(Boolean);

describe('ulogd formats vs ulogd2', { timeout: 120_000 }, () => {
  const t = new Topology('ul');
  const dir = mkdtempSync(join(tmpdir(), 'conntrail-ulogd-'));
  before(() => { t.up({ nft: mixedRules(t) }); shortTimeouts(t); });
  after(() => { t.down(); rmSync(dir, { recursive: true, force: true }); });

  it('logemu lines and ulogd-json records match, eventv1 and device included, and outside UTC with a non-ASCII device', async () => {
    const peers = {
      json: config(dir, 'json', 'json'),
      jsonv1: config(dir, 'jsonv1', 'json', 'eventv1=1\ndevice="fw1"'),
      // outside UTC, and a device name that is not ASCII: ulogd writes the zone offset and raw UTF-8
      jsontz: config(dir, 'jsontz', 'json', 'device="pare-feu-é"'),
      emu: config(dir, 'emu', 'emu'),
    };
    const tz = { env: { ...process.env, TZ: 'Asia/Kolkata' } };
    const refs = Object.entries(peers).map(([k, conf]) => t.spawn(t.rtr, ['ulogd', '-c', conf], k === 'jsontz' ? tz : {}));
    const ours = {
      json: t.spawn(t.rtr, [...CONNTRAIL, 'events', '-e', 'NEW,DESTROY', '--format', 'ulogd-json']),
      jsonv1: t.spawn(t.rtr, [...CONNTRAIL, 'events', '-e', 'NEW,DESTROY', '--format', 'ulogd-json', '--ulogd-eventv1', '--ulogd-device', 'fw1']),
      jsontz: t.spawn(t.rtr, [...CONNTRAIL, 'events', '-e', 'NEW,DESTROY', '--format', 'ulogd-json', '--ulogd-device', 'pare-feu-é'], tz),
      emu: t.spawn(t.rtr, [...CONNTRAIL, 'events', '-e', 'NEW,DESTROY', '--format', 'logemu']),
    };
    const out = Object.fromEntries(Object.entries(ours).map(([k, p]) => [k, collect(p)]));
    for (const p of [...refs, ...Object.values(ours)]) assert.ok(await waitSubscribed(p.pid!), 'subscribed');

    await mixedTraffic(t);
    await reapExpired(t);
    const theirs = (k: string) => lines(readFileSync(join(dir, `${k}.out`), 'utf8'));
    await waitFor(() => Object.keys(peers).every((k) => theirs(k).length >= 20 && lines(out[k].out()).length >= theirs(k).length));
    for (const p of [...refs, ...Object.values(ours)]) await t.stop(p);
    await Promise.all(Object.values(out).map((o) => o.done));

    // LOGEMU: "Mon dd hh:mm:ss host " then PRINTFLOW's text
    const stamp = /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d /;
    const emuTheirs = theirs('emu');
    const emuOurs = lines(out.emu.out());
    assert.ok(emuTheirs.length >= 20, `ulogd logged ${emuTheirs.length}`);
    for (const l of emuOurs) assert.match(l, stamp);
    assert.deepEqual(emuOurs.map((l) => l.replace(stamp, '')), emuTheirs.map((l) => l.replace(stamp, '')));

    for (const k of ['json', 'jsonv1', 'jsontz']) {
      const norm = (l: string) => {
        const o = JSON.parse(l);
        const ts = o.timestamp ?? o['@timestamp'];
        assert.match(ts, k === 'jsontz' ? /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0530$/ : /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
        delete o.timestamp;
        delete o['@timestamp'];
        // a NEW event's start is when it was received (no kernel timestamp)
        if (o['ct.event'] === 1) {
          assert.ok(Number.isInteger(o['flow.start.sec']) && Number.isInteger(o['flow.start.usec']));
          o['flow.start.sec'] = o['flow.start.usec'] = 'receipt';
        }
        return JSON.stringify(o); // key order included
      };
      const a = lines(out[k].out());
      const b = theirs(k);
      assert.ok(b.length >= 20);
      assert.deepEqual(a.map(norm), b.map(norm), k);
      // the raw text too, apart from the time fields: ulogd's spacing
      assert.equal(a[0].slice(0, 2), b[0].slice(0, 2));
      assert.ok(a.every((l) => l.includes('", "dvc": ')));
      // the device's bytes as ulogd writes them (raw UTF-8, no \u escape)
      if (k === 'jsontz') for (const x of [...a, ...b]) assert.ok(x.includes('"dvc": "pare-feu-é"'), x);
    }
  });
});
