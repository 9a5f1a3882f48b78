// User session and connection events from the Sense proxy's log appender: a UDP source of its own
// port feeding the session-event lane; the handler keeps the active users in the same transactions.
import type { Feature } from './feature.ts';
import { describeUserEvent, UserEventHandler, userEventDatagramParser } from '../alerts/user-events.ts';
import type { UserEvent } from '../sense/user-event.ts';
import { UdpSource, sharedUdpOptions } from '../sense/udp-source.ts';

export const USER_EVENT_SOURCE = 'udp_session';

export const userEvents: Feature = {
  name: 'user session events',
  enabled: (b) => b.mqttConfig.enable && b.udpServerConfig.enable && b.udpServerConfig.sessionConnectionEvents.enable,
  build(ctx) {
    const delivery = ctx.delivery;
    if (!delivery) return [];
    const b = ctx.config.butler;
    const m = b.mqttConfig;
    const u = b.udpServerConfig;
    const s = u.sessionConnectionEvents;
    const topic = (value: string) => value || null;
    const handler = new UserEventHandler(
      {
        topics: {
          sessionStart: topic(m.sessionStartTopic),
          sessionStop: topic(m.sessionStopTopic),
          connectionOpen: topic(m.connectionOpenTopic),
          connectionClose: topic(m.connectionCloseTopic),
          event: topic(m.userEventTopic),
          activeUserCount: topic(m.activeUserCountTopic),
          activeUsers: topic(m.activeUsersTopic),
        },
        sessionIdleMinutes: s.sessionIdleMinutes,
        excludeUsers: s.excludeUsers,
        retainActiveUsers: !m.azureEventGrid.enable,
      },
      { store: delivery.store, outbox: delivery.outbox, logger: ctx.logger },
    );
    const lane = delivery.pipeline.lane<UserEvent>(
      {
        source: USER_EVENT_SOURCE,
        name: 'UDP session events',
        inputName: 'datagram',
        concurrency: u.messageQueue.maxConcurrent,
        queueSize: u.messageQueue.maxSize,
        backpressurePercent: u.messageQueue.backpressureThreshold,
        deduplicate: false,
      },
      { parse: userEventDatagramParser(s.excludeUsers), handle: (event) => handler.handle(event), describe: describeUserEvent },
    );
    const source = new UdpSource({ ...sharedUdpOptions(u), name: 'session events', port: u.portSessionConnectionEvents }, lane, {}, { logger: ctx.logger, metrics: ctx.metrics });
    // The state is loaded before the lane resumes stored events, so they apply on top of it.
    ctx.addListener('session events', () => source.address);
    return [
      { name: 'active users', start: () => handler.start(), stop: () => handler.stop() },
      { name: 'session event pipeline', start: () => lane.start(), stop: () => lane.stop() },
      { name: 'UDP session events listener', start: () => source.start(), stop: () => source.stop() },
    ];
  },
};
