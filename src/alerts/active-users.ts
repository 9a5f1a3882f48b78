// Who is using Qlik Sense right now: a user is active while they have a session open, and
// one without events for the idle time is dropped, so a lost stop does not count them for ever. A
// change is planned, stored with its messages, and only then applied, so memory never runs ahead of disk.
import type { UserCommand } from '../sense/user-event.ts';
import type { KeyValueTable } from '../store/kv.ts';

/** One active user as kept in memory and in the store. */
export interface ActiveUser {
  /** Spelling of the session start that made the user active. */
  directory: string;
  userId: string;
  /** Sessions started and not yet stopped (at least 1 while active). */
  sessions: number;
  /** Time of the user's last session or connection event, epoch ms. */
  lastSeen: number;
}

/** What one event (or the idle sweep) does to one user. */
export interface UserChange {
  key: string;
  /** The user's state after the change; null = no longer active. */
  after: ActiveUser | null;
  /** The set of active users changes (a user became active or stopped being active). */
  setChanged: boolean;
}

/** Key prefix of the rows in the store's kv table. */
export const ACTIVE_USER_KEY_PREFIX = 'active-user:';

/** Sense compares user directories and ids without regard to letter case; so does the count. */
export function activeUserKey(directory: string, userId: string): string {
  return JSON.stringify([directory.toLowerCase(), userId.toLowerCase()]);
}

/** How a user appears in the list payload: `<userDir>/<userId>`, as in the legacy session payload. */
export function displayName(u: Pick<ActiveUser, 'directory' | 'userId'>): string {
  return `${u.directory}/${u.userId}`;
}

function compareNames(a: string, b: string): number {
  const la = a.toLowerCase();
  const lb = b.toLowerCase();
  if (la !== lb) return la < lb ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export class ActiveUsers {
  private readonly users = new Map<string, ActiveUser>();

  constructor(private readonly idleMs: number) {}

  get count(): number {
    return this.users.size;
  }

  /** Display names of the active users, sorted (case-insensitively, then exactly). */
  names(): string[] {
    return [...this.users.values()].map(displayName).sort(compareNames);
  }

  /** The names as they would be after `change` (the state itself is not touched). */
  namesAfter(change: UserChange): string[] {
    if (!change.setChanged) return this.names();
    const names = [...this.users.entries()].filter(([k]) => k !== change.key).map(([, u]) => displayName(u));
    if (change.after) names.push(displayName(change.after));
    return names.sort(compareNames);
  }

  /**
   * What an event would change, or null when it changes nothing: a session start adds a session
   * (and makes the user active); a stop removes one (the last one ends the user's activity); a stop
   * for a user who is not active, and connection events, only refresh an active user's last-seen time.
   */
  plan(command: UserCommand, directory: string, userId: string, now: number): UserChange | null {
    const key = activeUserKey(directory, userId);
    const current = this.users.get(key);
    switch (command) {
      case 'Start session':
        return current
          ? { key, after: { ...current, sessions: current.sessions + 1, lastSeen: now }, setChanged: false }
          : { key, after: { directory, userId, sessions: 1, lastSeen: now }, setChanged: true };
      case 'Stop session':
        if (!current) return null;
        return current.sessions <= 1
          ? { key, after: null, setChanged: true }
          : { key, after: { ...current, sessions: current.sessions - 1, lastSeen: now }, setChanged: false };
      case 'Open connection':
      case 'Close connection':
        return current ? { key, after: { ...current, lastSeen: now }, setChanged: false } : null;
    }
  }

  /** Users whose last event is `idleMs` or more before `now`, as changes that end their activity. */
  planExpiry(now: number): UserChange[] {
    return this.planEnd((u) => this.isIdle(u, now));
  }

  isIdle(u: ActiveUser, now: number): boolean {
    return now - u.lastSeen >= this.idleMs;
  }

  /** Changes that end the activity of every user `shouldEnd` picks. */
  planEnd(shouldEnd: (u: ActiveUser) => boolean): UserChange[] {
    const out: UserChange[] = [];
    for (const [key, u] of this.users) if (shouldEnd(u)) out.push({ key, after: null, setChanged: true });
    return out;
  }

  apply(change: UserChange): void {
    if (change.after) this.users.set(change.key, change.after);
    else this.users.delete(change.key);
  }

  /** The names after several changes (expiry removes users only). */
  namesAfterAll(changes: readonly UserChange[]): string[] {
    const removed = new Set(changes.filter((c) => c.after === null).map((c) => c.key));
    return [...this.users.entries()].filter(([k]) => !removed.has(k)).map(([, u]) => displayName(u)).sort(compareNames);
  }

  /** Writes a change to the kv table (inside the caller's transaction). */
  static persist(kv: KeyValueTable, change: UserChange): void {
    const key = ACTIVE_USER_KEY_PREFIX + change.key;
    if (change.after) kv.put(key, JSON.stringify(change.after));
    else kv.delete(key);
  }

  /**
   * Replaces the state with what the kv table holds. Rows that do not read as an active user are
   * returned as `unreadable` (the caller deletes them); expired users are loaded and left to the
   * next expiry sweep.
   */
  load(kv: KeyValueTable): { loaded: number; unreadable: string[] } {
    this.users.clear();
    const unreadable: string[] = [];
    for (const { key, value } of kv.entries(ACTIVE_USER_KEY_PREFIX)) {
      const user = readUser(value);
      if (user === null) {
        unreadable.push(key);
        continue;
      }
      this.users.set(key.slice(ACTIVE_USER_KEY_PREFIX.length), user);
    }
    return { loaded: this.users.size, unreadable };
  }
}

function readUser(value: string): ActiveUser | null {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  if (typeof o['directory'] !== 'string' || typeof o['userId'] !== 'string') return null;
  if (typeof o['sessions'] !== 'number' || !Number.isInteger(o['sessions']) || o['sessions'] < 1) return null;
  if (typeof o['lastSeen'] !== 'number' || !Number.isFinite(o['lastSeen'])) return null;
  return { directory: o['directory'], userId: o['userId'], sessions: o['sessions'], lastSeen: o['lastSeen'] };
}
