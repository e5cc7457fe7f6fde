// Formats by name: pure functions from a record to one line of text.
import type { FlowEvent } from '../records/event.js';
import { formatConntrack, type ConntrackFormatOptions } from './conntrack.js';
import { labelMapFile, loadLabelMap } from '../util/connlabel.js';
import { formatVyos } from './vyos.js';
import { formatJson } from './json.js';
import { formatLogemu, formatUlogdJson, shortHostname } from './ulogd.js';
import { prognameOf } from '../util/progname.js';

export const FORMATS = ['conntrack', 'vyos', 'json', 'logemu', 'ulogd-json'] as const;
export type FormatName = (typeof FORMATS)[number];
export const CONNTRACK_OUTPUT_OPTIONS = ['extended', 'id', 'timestamp', 'ktimestamp', 'labels'] as const;

export interface FormatSpec {
  format: FormatName;
  /** conntrack -o options */
  output?: readonly string[];
  /** -o labels: the connlabel.conf to read (default /etc/xtables/connlabel.conf) */
  labelmap?: string;
  /** the events come from another namespace (no progname lookup) */
  netns?: string;
  ulogdDevice?: string;
  ulogdEventv1?: boolean;
}

export type Formatter = (ev: FlowEvent) => string;

export function makeFormatter(spec: FormatSpec): Formatter {
  const out = spec.output ?? [];
  switch (spec.format) {
    case 'vyos':
      return formatVyos;
    case 'json':
      return formatJson;
    case 'logemu': {
      const host = shortHostname();
      return (ev) => formatLogemu(ev, { hostname: host });
    }
    case 'ulogd-json': {
      const opts = { device: spec.ulogdDevice ?? 'Netfilter', eventv1: spec.ulogdEventv1 === true };
      return (ev) => formatUlogdJson(ev, opts);
    }
    default: {
      const opts: ConntrackFormatOptions = {
        extended: out.includes('extended'),
        id: out.includes('id'),
        timestamp: out.includes('timestamp'),
        ktimestamp: out.includes('ktimestamp'),
        labelMap: !out.includes('labels') ? undefined : spec.labelmap !== undefined ? labelMapFile(spec.labelmap, '--labelmap') : loadLabelMap(),
        // the progname lookup reads this process's namespace's /proc/net/netlink
        progname: spec.netns ? undefined : prognameOf,
      };
      return (ev) => formatConntrack(ev, opts);
    }
  }
}
