// User session and connection events from the Qlik Sense Proxy: the legacy Butler 2–4
// topics, the JSON event topic, and the retained active-user count and list. The active users are
// stored in the kv table in the same transaction that completes each event, so a restart resumes them.
import type { Logger } from '../observability/logger.ts';
import { parseUserEvent, type UserEvent } from '../sense/user-event.ts';
import type { HandledEvent, ParseResult } from '../pipeline/lane.ts';
import { KeyValueTable } from '../store/kv.ts';
import type { CompletionStep } from '../store/inbox.ts';
import type { Outbox } from '../store/outbox.ts';
import type { Store } from '../store/sqlite.ts';
import { MessageRejectedError, type OutgoingMessage } from '../store/types.ts';
import { ActiveUsers, activeUserKey, type UserChange } from './active-users.ts';
import { activeUserCountPayload, activeUsersPayload, sessionLegacyPayload, userEventJsonPayload } from './payloads.ts';

/** Each topic null = off (its config key is empty). */
export interface UserEventTopics {
  sessionStart: string | null;
  sessionStop: string | null;
  connectionOpen: string | null;
  connectionClose: string | null;
  /** Every event as JSON. */
  event: string | null;
  activeUserCount: string | null;
  activeUsers: string | null;
}

export interface UserEventOptions {
  topics: UserEventTopics;
  sessionIdleMinutes: number;
  /** Users no longer counted after a restart when they were added to the exclude list meanwhile. */
  excludeUsers?: readonly ExcludedUser[];
  /** Retain the active-user messages (off in Azure Event Grid mode). */
  retainActiveUsers: boolean;
  /** How often idle users are looked for; default a quarter of the idle time, at most a minute. */
  sweepIntervalMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export interface UserEventDeps {
  store: Store;
  outbox: Outbox;
  logger: Logger;
}

export interface ExcludedUser {
  directory: string;
  userId: string;
}

const LEGACY_TOPIC: Record<UserEvent['command'], keyof UserEventTopics> = {
  'Start session': 'sessionStart',
  'Stop session': 'sessionStop',
  'Open connection': 'connectionOpen',
  'Close connection': 'connectionClose',
};

/**
 * The parser for the session port: a parse error or an excluded user is refused on the receive path
 * (counted by reason, nothing stored). No dedup key: the proxy's lines carry no id of their own.
 */
export function userEventDatagramParser(exclude: readonly ExcludedUser[]): (datagram: Buffer) => ParseResult<UserEvent> {
  const excluded = excludedUsers(exclude);
  return (datagram) => {
    const parsed = parseUserEvent(datagram);
    if (!parsed.ok) return { ok: false, reason: parsed.error.reason, detail: parsed.error.detail };
    const e = parsed.value;
    if (excluded(e.userDirectory, e.userId)) {
      return { ok: false, reason: 'excluded_user', detail: `${e.userDirectory}/${e.userId} is in sessionConnectionEvents.excludeUsers` };
    }
    return { ok: true, event: e, dedupKey: null };
  };
}

/** Directory and id compared ignoring letter case, as Sense compares them. */
function excludedUsers(exclude: readonly ExcludedUser[]): (directory: string, userId: string) => boolean {
  const keys = new Set(exclude.map((u) => activeUserKey(u.directory, u.userId)));
  return (directory, userId) => keys.has(activeUserKey(directory, userId));
}

/** One line for the status page. */
export function describeUserEvent(e: UserEvent): string {
  return `${e.command}: ${e.userDirectory}/${e.userId} on ${e.host}`;
}

/**
 * Turns events into messages and keeps the active users. Only `start` and the completion steps it
 * hands out change state, and only inside store transactions, so memory never runs ahead of disk.
 */
export class UserEventHandler {
  private readonly active: ActiveUsers | null;
  private readonly kv: KeyValueTable;
  private readonly now: () => number;
  private sweepTimer: NodeJS.Timeout | null = null;
  private listRefused = false;

  constructor(
    private readonly options: UserEventOptions,
    private readonly deps: UserEventDeps,
  ) {
    const t = options.topics;
    // No active-user topic: nothing to keep.
    this.active = t.activeUserCount || t.activeUsers ? new ActiveUsers(options.sessionIdleMinutes * 60_000) : null;
    this.kv = new KeyValueTable(deps.store.db);
    this.now = options.now ?? Date.now;
    // A batch that failed to commit took its changes with it: read the state back from disk.
    deps.store.onCommitFailed(() => {
      if (this.active) this.active.load(this.kv);
    });
  }

  /** Active users now (for tests and the log). */
  activeUserNames(): string[] {
    return this.active?.names() ?? [];
  }

  /**
   * Loads the active users the store kept, ends those idle too long, and publishes the count and
   * list once, so a subscriber sees the right retained values even if the broker lost them.
   */
  async start(): Promise<void> {
    const active = this.active;
    if (!active) return;
    const { loaded, unreadable } = active.load(this.kv);
    if (unreadable.length > 0) this.deps.logger.warn({ keys: unreadable }, `active users: ${unreadable.length} stored entries could not be read and are removed`);
    const excluded = excludedUsers(this.options.excludeUsers ?? []);
    const now = this.now();
    try {
      await this.deps.store.write((db) => {
        for (const key of unreadable) this.kv.delete(key);
        const ended = active.planEnd((u) => active.isIdle(u, now) || excluded(u.directory, u.userId));
        for (const change of ended) ActiveUsers.persist(this.kv, change);
        this.deps.outbox.insertInTransaction(db, this.activeMessages(active.namesAfterAll(ended)));
        for (const change of ended) active.apply(change);
      });
    } catch (err) {
      // Outbox full or a store error: the state stays as loaded; the next change or sweep publishes.
      this.deps.logger.warn(`active users: the resumed count could not be queued yet: ${(err as Error).message}`);
    }
    this.deps.logger.info(`active users: ${active.count} resumed from the store (${loaded} stored, ${loaded - active.count} of them idle for ${this.options.sessionIdleMinutes} minutes or more, or excluded, and no longer counted)`);
    const interval = this.options.sweepIntervalMs ?? Math.min(60_000, Math.max(1000, Math.floor((this.options.sessionIdleMinutes * 60_000) / 4)));
    this.sweepTimer = setInterval(() => void this.sweep(), interval);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  /** Ends the activity of users idle for sessionIdleMinutes (a stop event was lost) and publishes the change. */
  async sweep(): Promise<void> {
    const active = this.active;
    if (!active) return;
    let ended = 0;
    try {
      await this.deps.store.write((db) => {
        const expired = active.planExpiry(this.now());
        if (expired.length === 0) return;
        for (const change of expired) ActiveUsers.persist(this.kv, change);
        this.deps.outbox.insertInTransaction(db, this.activeMessages(active.namesAfterAll(expired)));
        for (const change of expired) active.apply(change);
        ended = expired.length;
      });
    } catch (err) {
      // Outbox full or a store error: nothing changed; the next sweep tries again.
      this.deps.logger.warn(`active users: idle sessions could not be ended yet: ${(err as Error).message}`);
      return;
    }
    if (ended > 0) this.deps.logger.info(`active users: ${ended} user(s) without events for ${this.options.sessionIdleMinutes} minutes no longer counted; ${active.count} active`);
  }

  /**
   * The messages of one event, and the completion step that moves the active users with it. Pure
   * with respect to state: the listener may call it again for the same event after a failed commit.
   */
  async handle(event: UserEvent): Promise<HandledEvent> {
    const t = this.options.topics;
    const messages: OutgoingMessage[] = [];
    const legacy = t[LEGACY_TOPIC[event.command]];
    if (legacy) messages.push({ topic: legacy, payload: sessionLegacyPayload(event), kind: 'session_legacy' });
    if (t.event) messages.push({ topic: t.event, payload: userEventJsonPayload(event), kind: 'user_event' });
    return this.active ? { messages, step: this.step(this.active, event) } : { messages };
  }

  /**
   * Runs in the completing transaction, in commit order: the change is planned from the state as
   * committed so far, stored with the event, and applied in memory once its messages are stored.
   */
  private step(active: ActiveUsers, event: UserEvent): CompletionStep {
    return () => {
      const change = active.plan(event.command, event.userDirectory, event.userId, this.now());
      if (change === null) return;
      ActiveUsers.persist(this.kv, change);
      return { messages: change.setChanged ? this.activeMessages(active.namesAfter(change)) : [], applied: () => this.applied(active, change) };
    };
  }

  private applied(active: ActiveUsers, change: UserChange): void {
    active.apply(change);
    if (change.setChanged) this.deps.logger.debug(`active users: ${active.count}`);
  }

  private activeMessages(names: string[]): OutgoingMessage[] {
    const t = this.options.topics;
    const retain = this.options.retainActiveUsers;
    const out: OutgoingMessage[] = [];
    if (t.activeUserCount) out.push({ topic: t.activeUserCount, payload: activeUserCountPayload(names.length), retain, kind: 'active_users' });
    if (t.activeUsers) {
      const list: OutgoingMessage = { topic: t.activeUsers, payload: activeUsersPayload(names), retain, kind: 'active_users' };
      // A list too large for the broker (Event Grid takes 512 KiB) must not hold up the events that
      // change it: it is left out, the count still goes.
      try {
        this.deps.outbox.validate([list]);
        out.push(list);
        this.listRefused = false;
      } catch (err) {
        if (!(err instanceof MessageRejectedError)) throw err;
        if (!this.listRefused) this.deps.logger.warn(`active users: the list of ${names.length} users is not published: ${err.message}`);
        this.listRefused = true;
      }
    }
    return out;
  }
}
