// Datagrams the kernel dropped on a socket before anyone read it (receive buffer full). Linux lists
// them in the last column ("drops") of /proc/net/udp and /proc/net/udp6, per socket; elsewhere they
// cannot be read and the figure is null.
import { readFileSync } from 'node:fs';

/** Sums the drops column of the lines whose local port is `port` (hex after the colon). */
export function parseUdpDrops(table: string, port: number): number {
  let drops = 0;
  const lines = table.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const cols = lines[i]!.trim().split(/\s+/);
    if (cols.length < 13) continue;
    const local = cols[1]!;
    const colon = local.lastIndexOf(':');
    if (colon < 0 || parseInt(local.slice(colon + 1), 16) !== port) continue;
    const n = Number(cols[cols.length - 1]);
    if (Number.isFinite(n)) drops += n;
  }
  return drops;
}

/** Kernel drops on the UDP sockets bound to `port`, IPv4 and IPv6; null where /proc/net is not there. */
export function readUdpDrops(port: number): number | null {
  if (process.platform !== 'linux') return null;
  let found = false;
  let drops = 0;
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    try {
      drops += parseUdpDrops(readFileSync(file, 'latin1'), port);
      found = true;
    } catch {
      // udp6 is absent where IPv6 is off
    }
  }
  return found ? drops : null;
}

/** net.core.rmem_max, the kernel's cap on a socket's receive buffer; null where it cannot be read. */
export function readRmemMax(): number | null {
  if (process.platform !== 'linux') return null;
  try {
    return Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim()) || null;
  } catch {
    return null;
  }
}
