export function ringWriter(ring: SharedArrayBuffer, control: SharedArrayBuffer): { put(msg: Uint8Array, address: string): boolean };
