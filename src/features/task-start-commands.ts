// Start Sense tasks from MQTT: the command source on the main broker feeds the command lane, whose
// handler applies the start filter and starts the task through QRS, answering on the result topic.
import type { Feature } from './feature.ts';
import { COMMAND_SOURCE, commandDedupKey, describeCommand, parseCommandInput, TaskCommandHandler } from '../alerts/task-commands.ts';
import { QRS_MISSING_DETAIL, TaskStarter, taskStartResultPayload } from '../alerts/task-start.ts';
import { CommandSource, commandFilter } from '../mqtt/command-source.ts';
import type { TaskStartCommand } from '../mqtt/task-start-command.ts';

export const taskStartCommands: Feature = {
  name: 'task start commands',
  enabled: (b) => b.mqttConfig.enable,
  build(ctx) {
    const delivery = ctx.delivery;
    if (!delivery) return [];
    const b = ctx.config.butler;
    const m = b.mqttConfig;
    const qrs = ctx.qrs();
    const f = b.startTaskFilter;
    const starter = qrs
      ? new TaskStarter(
          { enable: f.enable, taskIds: f.allowTask.taskId, tags: f.allowTask.tag, customProperties: f.allowTask.customProperty.map((cp) => ({ name: cp.name, value: cp.value })) },
          { qrs, logger: ctx.logger },
        )
      : null;
    let resultTopic = m.taskStartResultTopic;
    if (resultTopic && resultTopic === m.taskStartTopic) {
      // A result on the command topic would come back as a command: never answer there.
      ctx.logger.error({ topic: resultTopic }, 'mqttConfig.taskStartResultTopic equals taskStartTopic: results are not published');
      resultTopic = '';
    }
    const handler = new TaskCommandHandler(
      { resultTopic, resultPayload: taskStartResultPayload, unavailableDetail: QRS_MISSING_DETAIL },
      { starter, logger: ctx.logger, metrics: ctx.metrics },
    );
    const lane = delivery.pipeline.lane<TaskStartCommand>(
      {
        source: COMMAND_SOURCE,
        name: 'MQTT task start commands',
        concurrency: m.taskStartConcurrency,
        queueSize: 1000,
        dedupTtlMs: m.taskStartCorrelationTtlMinutes * 60_000,
      },
      {
        parse: (payload) => parseCommandInput(payload),
        handle: (cmd) => handler.handle(cmd),
        describe: describeCommand,
        // Commands are few and each refusal matters to whoever sent it: every one is a warning.
        logRejection: (reason, detail) => ({ level: reason === 'duplicate' ? 'info' : reason === 'unavailable' ? 'debug' : 'warn', msg: `task start command refused (${reason}): ${detail}` }),
      },
    );
    const source = new CommandSource(
      {
        subscriptionFilter: commandFilter(m.subscriptionRootTopic, m.taskStartTopic, { wholeRoot: m.subscribeWholeRoot, pair: Boolean(delivery.ha) }),
        taskStartTopic: m.taskStartTopic,
        acceptRetained: m.taskStartAcceptRetained,
        unavailable: starter ? null : QRS_MISSING_DETAIL,
        executes: delivery.ha ? () => delivery.ha?.isActive() ?? true : undefined,
        // A command the standby saw shortly before the takeover may have reached a dying active only.
        deferWindowMs: delivery.ha ? delivery.ha.options.failoverMs + 2000 : 0,
        resultTopic,
        // An old active's answer to a command it took just before the takeover cancels it here.
        takeOverGraceMs: delivery.ha ? delivery.ha.heartbeatMs : 0,
      },
      {
        connection: delivery.connection,
        lane,
        answer: (...a) => handler.result(...a),
        sink: delivery.outbox,
        logger: ctx.logger,
        metrics: ctx.metrics,
        // The correlation ids the other instance started are kept durably here as well.
        startedElsewhere: delivery.ha
          ? (taskId, correlationId) => {
              const key = commandDedupKey({ taskId, correlationId });
              if (key) void delivery.inbox.burnKey(key, m.taskStartCorrelationTtlMinutes * 60_000).catch((err: Error) => ctx.logger.warn({ correlationId, err: err.message }, `could not keep the correlation id of a task start answered by the other instance: ${err.message}`));
            }
          : undefined,
      },
    );
    const ha = delivery.ha;
    const onRole = (role: string) => {
      if (role === 'active') source.takeOver();
    };
    return [
      { name: 'task start command pipeline', start: () => lane.start(), stop: () => lane.stop() },
      ...(ha ? [{ name: 'task start takeover', start: () => void ha.on('role', onRole), stop: () => void ha.off('role', onRole) }] : []),
      { name: 'task start commands', start: () => source.start(), stop: () => source.stop() },
    ];
  },
};
