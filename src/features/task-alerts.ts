// Reload-task alerts from the Sense scheduler's log appender: a UDP source feeding the task-event lane,
// whose handler enriches through QRS and builds Butler's messages. The UDP server's own status
// messages ("start" when listening, "error" on a socket error) go out on taskFailureServerStatusTopic.
import type { Feature } from './feature.ts';
import { describeSchedulerEvent, parseSchedulerDatagram, QRS_NOT_CONFIGURED, TaskAlertHandler } from '../alerts/task-alerts.ts';
import type { SchedulerEvent } from '../sense/datagram.ts';
import { UdpSource, sharedUdpOptions } from '../sense/udp-source.ts';

export const TASK_EVENT_SOURCE = 'udp_task';

export const taskAlerts: Feature = {
  name: 'reload task alerts',
  enabled: (b) => b.mqttConfig.enable && b.udpServerConfig.enable,
  build(ctx) {
    const delivery = ctx.delivery;
    if (!delivery) return [];
    const b = ctx.config.butler;
    const m = b.mqttConfig;
    const u = b.udpServerConfig;
    const qrs = ctx.qrs();
    if (!qrs) {
      ctx.logger.debug(`Butler.configQRS.host is empty: reload task alerts carry no QRS details (full messages say "enrichmentError":"${QRS_NOT_CONFIGURED}")`);
    }
    const handler = new TaskAlertHandler(
      {
        failure: m.taskFailureTopic,
        failureFull: m.taskFailureSendFull ? m.taskFailureFullTopic : null,
        aborted: m.taskAbortedTopic,
        abortedFull: m.taskAbortedSendFull ? m.taskAbortedFullTopic : null,
        success: m.taskSuccessTopic || null,
        successFull: m.taskSuccessFullTopic || null,
      },
      { qrs, logger: ctx.logger, metrics: ctx.metrics },
    );
    const lane = delivery.pipeline.lane<SchedulerEvent>(
      {
        source: TASK_EVENT_SOURCE,
        name: 'UDP task events',
        inputName: 'datagram',
        concurrency: u.messageQueue.maxConcurrent,
        queueSize: u.messageQueue.maxSize,
        backpressurePercent: u.messageQueue.backpressureThreshold,
        deduplicate: u.deduplication.enable,
      },
      {
        parse: parseSchedulerDatagram,
        handle: (event) => handler.handle(event),
        handleNow: (event) => handler.handleNow(event),
        describe: describeSchedulerEvent,
      },
    );
    let listening = false;
    const status = (payload: 'start' | 'error') => {
      delivery.outbox.enqueue([{ topic: m.taskFailureServerStatusTopic, payload, kind: 'udp_status' }]).catch((err: Error) => {
        ctx.logger.error(`could not queue UDP server status "${payload}": ${err.message}`);
      });
    };
    const source = new UdpSource(
      { ...sharedUdpOptions(u), name: 'task events', port: u.portTaskFailure },
      lane,
      {
        onListening: () => {
          listening = true;
          status('start');
        },
        // A failed bind stops the start-up: nothing is announced for a bridge that does not run.
        onSocketError: () => {
          if (listening) status('error');
        },
      },
      { logger: ctx.logger, metrics: ctx.metrics },
    );
    // The lane starts first (events left from the last run go first), the socket after it.
    ctx.addListener('reload task events', () => source.address);
    return [
      { name: 'task event pipeline', start: () => lane.start(), stop: () => lane.stop() },
      { name: 'UDP task events listener', start: () => source.start(), stop: () => source.stop() },
    ];
  },
};
