// Formats of the packet log, by name: pure functions from a PacketLog to one line.
import type { PacketLog } from '../../records/packet.js';
import { formatPacketJson } from './json.js';

export const PACKET_FORMATS = ['json'] as const;
export type PacketFormatName = (typeof PACKET_FORMATS)[number];

export interface PacketFormatSpec {
  format: PacketFormatName;
  netns?: string;
}

export type PacketFormatter = (p: PacketLog) => string;

export function makePacketFormatter(spec: PacketFormatSpec): PacketFormatter {
  switch (spec.format) {
    default:
      return formatPacketJson;
  }
}
