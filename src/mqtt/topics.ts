// MQTT topic rules (MQTT 3.1.1 §4.7 / MQTT 5 §4.7): validation of publish topics and
// subscription filters, and filter matching. Pure; used by config validation, REST and commands.

export type TopicCheck = { ok: true } | { ok: false; reason: string };

const MAX_TOPIC_BYTES = 65535;

/** A topic a message can be published to: not empty, no wildcards, no NUL, at most 65535 bytes. */
export function checkPublishTopic(topic: string): TopicCheck {
  if (topic.length === 0) return { ok: false, reason: 'topic is empty' };
  if (topic.includes('+') || topic.includes('#')) return { ok: false, reason: 'topic contains a wildcard (+ or #), which is only allowed in subscriptions' };
  if (topic.includes('\u0000')) return { ok: false, reason: 'topic contains a NUL character' };
  if (Buffer.byteLength(topic, 'utf8') > MAX_TOPIC_BYTES) return { ok: false, reason: `topic is longer than ${MAX_TOPIC_BYTES} bytes` };
  return { ok: true };
}

/** A subscription filter: `#` only as the whole last level, `+` only as a whole level. */
export function checkTopicFilter(filter: string): TopicCheck {
  if (filter.length === 0) return { ok: false, reason: 'topic filter is empty' };
  if (filter.includes('\u0000')) return { ok: false, reason: 'topic filter contains a NUL character' };
  if (Buffer.byteLength(filter, 'utf8') > MAX_TOPIC_BYTES) return { ok: false, reason: `topic filter is longer than ${MAX_TOPIC_BYTES} bytes` };
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
