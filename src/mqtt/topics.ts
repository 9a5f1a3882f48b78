// MQTT topic rules (MQTT 3.1.1 §4.7 / MQTT 5 §4.7): validation of publish topics and
// subscription filters, and filter matching. Pure; used by config validation, REST and commands.

export type TopicCheck = { ok: true } | { ok: false; reason: string };

const MAX_TOPIC_BYTES = 65535;

// MQTT 3.1.1 §1.5.3 / MQTT 5 §1.5.4: a topic is well-formed UTF-8 without U+0000; control characters
// (U+0001–U+001F, U+007F–U+009F) and Unicode non-characters are allowed to make the receiver close the
// connection, and Mosquitto does. Such a message could never be delivered and would be sent again after
// every reconnect, so these are refused where topics come in.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const CONTROL = /[\u0001-\u001f\u007f-\u009f]/;
const NON_CHARACTER = /[\ufdd0-\ufdef\ufffe\uffff]|[\ud83f\ud87f\ud8bf\ud8ff\ud93f\ud97f\ud9bf\ud9ff\uda3f\uda7f\udabf\udaff\udb3f\udb7f\udbbf\udbff][\udffe\udfff]/;

/** Problems every topic and topic filter shares (what the text is), or null. */
function characterProblem(text: string, what: string): string | null {
  if (text.includes('\u0000')) return `${what} contains a NUL character`;
  if (LONE_SURROGATE.test(text)) return `${what} is not valid Unicode (it contains a lone surrogate)`;
  if (CONTROL.test(text)) return `${what} contains a control character (U+0001–U+001F or U+007F–U+009F), which brokers refuse`;
  if (NON_CHARACTER.test(text)) return `${what} contains a Unicode non-character (such as U+FFFE), which brokers refuse`;
  if (Buffer.byteLength(text, 'utf8') > MAX_TOPIC_BYTES) return `${what} is longer than ${MAX_TOPIC_BYTES} bytes`;
  return null;
}

/** A topic a message can be published to: not empty, no wildcards, characters a broker accepts, at most 65535 bytes. */
export function checkPublishTopic(topic: string): TopicCheck {
  if (topic.length === 0) return { ok: false, reason: 'topic is empty' };
  if (topic.includes('+') || topic.includes('#')) return { ok: false, reason: 'topic contains a wildcard (+ or #), which is only allowed in subscriptions' };
  const problem = characterProblem(topic, 'topic');
  return problem === null ? { ok: true } : { ok: false, reason: problem };
}

/**
 * Embedded broker (Aedes) limit: its topic matcher refuses a topic of more than 100 levels and drops the
 * connection that sent it. Mosquitto's default has no level limit, but a topic that only one of the two
 * brokers takes would make the bridge depend on which one runs, so the smaller figure applies to both.
 */
export const MAX_TOPIC_LEVELS = 100;

/**
 * A topic that came from outside (REST, a command) and will be published by the bridge. On top of
 * checkPublishTopic: no leading `$` (MQTT 3.1.1 §4.7.2 reserves `$` topics for the broker; Aedes answers a
 * publish to `$SYS/…` by dropping the connection, so such a message could never be delivered) and at most
 * MAX_TOPIC_LEVELS levels.
 */
export function checkDeliverableTopic(topic: string): TopicCheck {
  const basic = checkPublishTopic(topic);
  if (!basic.ok) return basic;
  if (topic.startsWith('$')) return { ok: false, reason: 'topic starts with "$", which MQTT reserves for the broker\'s own topics (such as $SYS)' };
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) levels++;
  if (levels > MAX_TOPIC_LEVELS) return { ok: false, reason: `topic has ${levels} levels; brokers accept at most ${MAX_TOPIC_LEVELS}` };
  return { ok: true };
}

/** A subscription filter: `#` only as the whole last level, `+` only as a whole level. */
export function checkTopicFilter(filter: string): TopicCheck {
  if (filter.length === 0) return { ok: false, reason: 'topic filter is empty' };
  const problem = characterProblem(filter, 'topic filter');
  if (problem !== null) return { ok: false, reason: problem };
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return { ok: false, reason: '"#" must be the whole last level of a topic filter' };
    }
    if (level.includes('+') && level !== '+') return { ok: false, reason: '"+" must be a whole level of a topic filter' };
  }
  return { ok: true };
}

/** Does a (valid) topic filter match a (valid) publish topic? `$`-topics are not matched by leading wildcards. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '#' || f[0] === '+')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}
