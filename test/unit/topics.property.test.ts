// Properties of the MQTT topic rules against a reference written separately from the MQTT
// specification (3.1.1 §1.5.3, §4.7; 5.0 §1.5.4, §4.7) and what Mosquitto enforces: validity of publish
// topics and subscription filters, and filter matching (translated to a regular expression here).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkPublishTopic, checkTopicFilter, topicMatches } from '../../src/mqtt/topics.ts';

const RUNS = { numRuns: 3000 };

/** UTF-8 length of a string, counting a lone surrogate as the 3 bytes Buffer writes for it. */
function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

/** A code point a broker takes in a topic: not NUL, not a control character, not a surrogate, not a non-character. */
function acceptableCodePoint(cp: number): boolean {
  if (cp === 0) return false;
  if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f)) return false;
  if (cp >= 0xd800 && cp <= 0xdfff) return false; // only lone surrogates reach here: for-of pairs the others
  if (cp >= 0xfdd0 && cp <= 0xfdef) return false;
  if ((cp & 0xffff) === 0xfffe || (cp & 0xffff) === 0xffff) return false;
  return true;
}

function acceptableText(s: string): boolean {
  for (const ch of s) if (!acceptableCodePoint(ch.codePointAt(0) as number)) return false;
  return s.length > 0 && utf8Length(s) <= 65535;
}

function refPublishTopic(t: string): boolean {
  return acceptableText(t) && !t.includes('+') && !t.includes('#');
}

function refTopicFilter(f: string): boolean {
  if (!acceptableText(f)) return false;
  const levels = f.split('/');
  return levels.every((level, i) => {
    if (level.includes('#')) return level === '#' && i === levels.length - 1;
    if (level.includes('+')) return level === '+';
    return true;
  });
}

/** Filter matching as a regular expression over the whole topic. */
function refMatches(filter: string, topic: string): boolean {
  const levels = filter.split('/');
  if (topic.startsWith('$') && (levels[0] === '+' || levels[0] === '#')) return false;
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let pattern = '';
  levels.forEach((level, i) => {
    if (level === '#') {
      // `a/#` also matches `a` itself; a filter of only `#` matches everything.
      pattern = i === 0 ? '[\\s\\S]*' : `${pattern}(?:/[\\s\\S]*)?`;
      return;
    }
    pattern += (i === 0 ? '' : '/') + (level === '+' ? '[^/]*' : escape(level));
  });
  return new RegExp(`^${pattern}$`).test(topic);
}

// Characters that matter to the rules, plus ordinary ones, so both outcomes are frequent.
const special = fc.constantFrom(
  'a', 'b', 'z', '/', '/', '+', '#', '$', ' ', 'é', '€', '😀', '\u0000', '\u0001', '\u001f', '\u007f', '\u0085', '\u009f', '\u00a0',
  '\ufdd0', '\ufdef', '\ufdf0', '\ufffe', '\uffff', '\ufffd', '\ud800', '\udfff', '\u{1fffe}', '\u{10ffff}', '\u{1f600}',
);
const topicText = fc.array(special, { maxLength: 24 }).map((a) => a.join(''));
const anyText = fc.oneof(topicText, fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }));

describe('checkPublishTopic', () => {
  it('agrees with the reference on generated topics', () => {
    fc.assert(
      fc.property(anyText, (t) => {
        assert.equal(checkPublishTopic(t).ok, refPublishTopic(t), JSON.stringify(t));
      }),
      RUNS,
    );
  });

  it('gives a reason whenever it refuses', () => {
    fc.assert(
      fc.property(anyText, (t) => {
        const r = checkPublishTopic(t);
        if (!r.ok) assert.ok(r.reason.length > 0);
      }),
      RUNS,
    );
  });

  it('counts the 65,535-byte limit in UTF-8 bytes, not characters', () => {
    assert.equal(checkPublishTopic('a'.repeat(65535)).ok, true);
    assert.deepEqual(checkPublishTopic('a'.repeat(65536)), { ok: false, reason: 'topic is longer than 65535 bytes' });
    assert.equal(checkPublishTopic('é'.repeat(32767) + 'a').ok, true); // 65,535 bytes
    assert.equal(checkPublishTopic('é'.repeat(32768)).ok, false); // 65,536 bytes
    assert.equal(checkPublishTopic('😀'.repeat(16384)).ok, false); // 65,536 bytes in 32,768 UTF-16 units
  });

  it('refuses what Mosquitto closes the connection for, with a reason naming it', () => {
    assert.deepEqual(checkPublishTopic('a/\u0001'), { ok: false, reason: 'topic contains a control character (U+0001–U+001F or U+007F–U+009F), which brokers refuse' });
    assert.deepEqual(checkPublishTopic('a/\u0085'), { ok: false, reason: 'topic contains a control character (U+0001–U+001F or U+007F–U+009F), which brokers refuse' });
    assert.deepEqual(checkPublishTopic('a/\ufffe'), { ok: false, reason: 'topic contains a Unicode non-character (such as U+FFFE), which brokers refuse' });
    assert.deepEqual(checkPublishTopic('a/\u{1fffe}'), { ok: false, reason: 'topic contains a Unicode non-character (such as U+FFFE), which brokers refuse' });
    assert.deepEqual(checkPublishTopic('a/\ud800'), { ok: false, reason: 'topic is not valid Unicode (it contains a lone surrogate)' });
    assert.deepEqual(checkPublishTopic('a\u0000b'), { ok: false, reason: 'topic contains a NUL character' });
    assert.equal(checkPublishTopic('a/\u00a0/\u{1f600}/\ufdf0').ok, true);
  });
});

describe('checkTopicFilter', () => {
  it('agrees with the reference on generated filters', () => {
    fc.assert(
      fc.property(anyText, (f) => {
        assert.equal(checkTopicFilter(f).ok, refTopicFilter(f), JSON.stringify(f));
      }),
      RUNS,
    );
  });

  it('accepts every valid publish topic as a filter (a filter without wildcards)', () => {
    fc.assert(
      fc.property(anyText, (t) => {
        if (refPublishTopic(t)) assert.equal(checkTopicFilter(t).ok, true, JSON.stringify(t));
      }),
      RUNS,
    );
  });
});

describe('topicMatches', () => {
  // Few level names, so filters and topics share levels and matches are common.
  const level = fc.constantFrom('a', 'b', '', '$x', 'é', 'sense');
  const filterLevel = fc.oneof(level, fc.constant('+'), fc.constant('#'));
  const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join('/'));
  const filter = fc.array(filterLevel, { minLength: 1, maxLength: 5 }).map((l) => l.join('/'));

  it('agrees with the reference for every valid filter and valid topic', () => {
    let matched = 0;
    fc.assert(
      fc.property(filter, topic, (f, t) => {
        fc.pre(refTopicFilter(f) && refPublishTopic(t));
        const expected = refMatches(f, t);
        if (expected) matched++;
        assert.equal(topicMatches(f, t), expected, `${JSON.stringify(f)} vs ${JSON.stringify(t)}`);
      }),
      { numRuns: 5000 },
    );
    assert.ok(matched > 100, `only ${matched} generated pairs matched; the generator is too sparse to prove much`);
  });

  it('a filter equal to the topic matches it; `#` matches every topic not starting with $', () => {
    fc.assert(
      fc.property(topic, (t) => {
        fc.pre(refPublishTopic(t));
        assert.equal(topicMatches(t, t), true);
        assert.equal(topicMatches('#', t), !t.startsWith('$'));
      }),
      RUNS,
    );
  });

  it('the examples of the specification', () => {
    assert.equal(topicMatches('sport/tennis/player1/#', 'sport/tennis/player1'), true);
    assert.equal(topicMatches('sport/tennis/player1/#', 'sport/tennis/player1/ranking'), true);
    assert.equal(topicMatches('sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon'), true);
    assert.equal(topicMatches('sport/#', 'sport'), true);
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis/player1'), true);
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis/player1/ranking'), false);
    assert.equal(topicMatches('sport/+', 'sport'), false);
    assert.equal(topicMatches('sport/+', 'sport/'), true);
    assert.equal(topicMatches('+/+', '/finance'), true);
    assert.equal(topicMatches('/+', '/finance'), true);
    assert.equal(topicMatches('+', '/finance'), false);
    assert.equal(topicMatches('#', '$SYS/broker/load'), false);
    assert.equal(topicMatches('+/monitor/Clients', '$SYS/monitor/Clients'), false);
    assert.equal(topicMatches('$SYS/#', '$SYS/monitor/Clients'), true);
    assert.equal(topicMatches('$SYS/monitor/+', '$SYS/monitor/Clients'), true);
    assert.equal(topicMatches('qliksense/#', 'qliksense/start_task'), true);
  });
});
