// Formats of the packet log, by name: pure functions from a PacketLog to one line.
import type { PacketLog } from '../../records/packet.js';
import { formatPacketJson } from './json.js';
import { formatPacketLogemu, formatPacketUlogdJson } from './ulogd.js';
import { formatPacketKernel } from './kernel.js';
import { shortHostname } from '../ulogd.js';

export const PACKET_FORMATS = ['logemu', 'ulogd-json', 'kernel', 'json'] as const;
export type PacketFormatName = (typeof PACKET_FORMATS)[number];

export interface PacketFormatSpec {
  format: PacketFormatName;
  netns?: string;
  /** ulogd-json: the JSON plugin's device (dvc) and eventv1; hwhdr: the stack has HWHDR */
  ulogdDevice?: string;
  ulogdEventv1?: boolean;
  hwhdr?: boolean;
}

export type PacketFormatter = (p: PacketLog) => string;

export function makePacketFormatter(spec: PacketFormatSpec): PacketFormatter {
  switch (spec.format) {
    case 'logemu': {
      const hostname = shortHostname();
      return (p) => formatPacketLogemu(p, { hostname });
    }
    case 'ulogd-json': {
      const o = { device: spec.ulogdDevice ?? 'Netfilter', eventv1: spec.ulogdEventv1 === true, hwhdr: spec.hwhdr === true };
      return (p) => formatPacketUlogdJson(p, o);
    }
    case 'kernel':
      return formatPacketKernel;
    default:
      return formatPacketJson;
  }
}
