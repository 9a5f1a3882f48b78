// JSON Schemas (TypeBox) of every payload the bridge publishes or reads over MQTT. The channel list
// (channels.ts) points at these; the AsyncAPI document, the contract tests and the code that builds
// the bridge's own payloads (bridge info/health, Home Assistant discovery) all use the same objects.
// JSON Schema cannot say key order: where Butler's byte layout matters, the description says so.
import Type, { type Static, type TArray, type TSchema, type TUnsafe } from 'typebox';

const Text = (description: string, extra: Record<string, unknown> = {}) => Type.String({ description, ...extra });

// ---- Plain-text payloads (content type text/plain; the schema describes the UTF-8 text) ----

export const ConnectStatusText = Text('`Connected to MQTT broker <host>:<port> with client ID <clientId>`, as Butler.', {
  pattern: '^Connected to MQTT broker .+:[0-9]+ with client ID .+$',
});

export const ForwardStatusText = Text('`Connected to MQTT broker "mqtts://<host>:<port>" with client ID <clientId>`, as Butler.', {
  pattern: '^Connected to MQTT broker "mqtts://.+:[0-9]+" with client ID .+$',
});

export const UdpServerStatusText = Type.Union([Type.Literal('start'), Type.Literal('error')], {
  description: '`start` once the UDP socket listens (sent when the broker is reachable), `error` on a socket error.',
});

export const TaskNameText = Text('The task name (datagram field 2, control characters removed, at most 500 characters).', { maxLength: 500 });

export const AppNameText = Text('The app name, or the app id when the name is not known.');

export const LicenseExpireText = Text(
  '`Qlik Sense server license expired on <date>` or `Qlik Sense server license is about to expire in <N> days, on <date>`.',
  { pattern: '^Qlik Sense server license (expired on .+|is about to expire in -?[0-9]+ days, on .+)$' },
);

export const SessionLegacyText = Text('`<host>: <userDirectory>/<userId>` (Butler 2–4).', { pattern: '^.*: .*/.*$' });

export const ActiveUserCountText = Text('The number of active users in decimal.', { pattern: '^[0-9]+$' });

export const TaskStartCommandText = Text('A task id (UUID; surrounding whitespace is trimmed).');

export const AnyText = Text('Any text, as given in the request body `message`.');

export const EmptyText = Type.String({ maxLength: 0, description: 'Empty payload: removes the retained discovery message.' });

export function availabilityText(online: string, offline: string): TSchema {
  return Type.Union([Type.Literal(online), Type.Literal(offline)], {
    description: `\`${online}\` on every connect; \`${offline}\` on shutdown and as the last-will.`,
  });
}

export const HomeAssistantStatusText = Type.Union([Type.Literal('online'), Type.Literal('offline')], {
  description: "Home Assistant's birth (`online`) and last-will (`offline`) message.",
});

// ---- JSON payloads ----

const TagNames = Type.Array(Type.Union([Type.String(), Type.Null()]), { description: 'The `name` of each tag (null for a tag without one).' });
const CustomProperties = Type.Array(Type.Object({ name: Type.Optional(Type.Unknown()), value: Type.Optional(Type.Unknown()) }, { additionalProperties: false }), {
  description: '`{name: definition.name, value}` of each custom property.',
});
const QrsObject = (what: string) => Type.Record(Type.String(), Type.Unknown(), { description: `The QRS \`${what}\` object as received; {} when QRS could not be asked.` });

const taskFullHead = {
  hostName: Type.String(),
  user: Type.String({ description: 'Datagram field 4 with each `\\\\` collapsed to `\\`.' }),
  taskName: Type.String(),
  taskId: Type.String(),
  appName: Type.String(),
  appId: Type.String(),
  logTimeStamp: Type.String(),
  logLevel: Type.String(),
  executionId: Type.String(),
  logMessage: Type.String(),
  qs_appTags: TagNames,
  qs_appCustomProperties: CustomProperties,
  qs_taskTags: TagNames,
  qs_taskCustomProperties: CustomProperties,
};
const enrichmentError = Type.Optional(Type.String({ description: 'Only when QRS could not be asked or did not answer: why the QRS fields are empty.' }));

export const TaskFailureFull = Type.Object(
  { ...taskFullHead, qs_taskMetadata: QrsObject('task/full'), enrichmentError },
  {
    additionalProperties: false,
    description: 'Keys in this order: hostName, user, taskName, taskId, appName, appId, logTimeStamp, logLevel, executionId, logMessage, qs_appTags, qs_appCustomProperties, qs_taskTags, qs_taskCustomProperties, qs_taskMetadata (then enrichmentError). Compact JSON.',
  },
);

export const TaskAbortedFull = Type.Object(
  { ...taskFullHead, qs_appMetadata: QrsObject('app/full'), qs_taskMetadata: QrsObject('task/full'), enrichmentError },
  { additionalProperties: false, description: 'As the failure payload, with qs_appMetadata just before qs_taskMetadata.' },
);

const serviceFields = {
  serviceHost: Type.String(),
  serviceName: Type.String(),
  serviceDisplayName: Type.String(),
  serviceFriendlyName: Type.String(),
  serviceDependencies: Type.Array(Type.String()),
  serviceStartType: Type.String(),
  serviceExePath: Type.String(),
  serviceStatus: Type.Union([Type.Literal('RUNNING'), Type.Literal('STOPPED')]),
};
const changeFields = { servicePrevStatus: Type.String({ description: 'The previous state, upper case.' }), serviceStatusChanged: Type.Literal(true) };

export const ServiceStatus = Type.Object(serviceFields, { additionalProperties: false, description: 'Keys in this order: serviceHost, serviceName, serviceDisplayName, serviceFriendlyName, serviceDependencies, serviceStartType, serviceExePath, serviceStatus.' });
export const ServiceRunning = Type.Object({ ...serviceFields, ...changeFields }, { additionalProperties: false, description: 'The status keys, then servicePrevStatus and serviceStatusChanged.' });
export const ServiceStopped = Type.Object({ ...serviceFields, ...changeFields }, { additionalProperties: false, description: 'As the running payload, but serviceFriendlyName comes before serviceDisplayName.' });

export const LicenseStatus = Type.Object(
  {
    licenseExpired: Type.Boolean(),
    expiryDateStr: Type.String({ description: 'The date after `Valid To:` in the license key details.' }),
    daysUntilExpiry: Type.Integer({ description: 'Whole days from now to the expiry date, rounded up; negative once expired.' }),
  },
  { additionalProperties: false, description: 'Keys in this order: licenseExpired, expiryDateStr, daysUntilExpiry.' },
);

export const TaskStartCommandJson = Type.Object(
  { taskId: Type.String({ description: 'The task id (UUID).' }), correlationId: Type.Optional(Type.String({ description: 'Echoed on the result topic.' })) },
  { additionalProperties: true },
);

export const TaskStartResult = Type.Object(
  {
    taskId: Type.Union([Type.String(), Type.Null()]),
    correlationId: Type.Union([Type.String(), Type.Null()]),
    status: Type.Union([Type.Literal('started'), Type.Literal('denied'), Type.Literal('invalid'), Type.Literal('failed')]),
    detail: Type.String(),
  },
  { additionalProperties: false, description: 'Keys in this order: taskId, correlationId, status, detail.' },
);

export const CloudReloadFull = Type.Object(
  {
    tenantId: Type.String(),
    appId: Type.String(),
    appName: Type.String(),
    reloadId: Type.String(),
    eventId: Type.String(),
    eventType: Type.String(),
    eventTime: Type.String(),
    status: Type.String(),
    userId: Type.String(),
    ownerId: Type.String(),
    duration: Type.String(),
    errors: Type.Array(Type.Unknown()),
    reload: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], { description: 'The reload record from the Qlik Cloud API, null without enrichment.' }),
    scriptLogTail: Type.Array(Type.String(), { description: 'The last lines of the reload script log.' }),
    enrichmentError: Type.Optional(Type.String()),
  },
  { additionalProperties: false, description: 'Keys in this order: tenantId, appId, appName, reloadId, eventId, eventType, eventTime, status, userId, ownerId, duration, errors, reload, scriptLogTail (then enrichmentError).' },
);

export const CloudEvent = Type.Object(
  {},
  {
    additionalProperties: true,
    description:
      'A Qlik Cloud CloudEvent: `com.qlik.v1.app.reload.finished` (eventId, eventType, eventTime, extensions.tenantId, data.status …) or `com.qlik.v1.reload.finished` (id, type, time, tenantid, data.status …). Failed reloads of the configured tenant raise an alert; anything else is counted and ignored.',
  },
);

export const UserEventJson = Type.Object(
  {
    messageType: Type.Union([Type.Literal('qseow-proxy-session'), Type.Literal('qseow-proxy-connection')]),
    host: Type.String(),
    command: Type.Union([Type.Literal('Start session'), Type.Literal('Stop session'), Type.Literal('Open connection'), Type.Literal('Close connection')]),
    user_directory: Type.String(),
    user_id: Type.String(),
    origin: Type.String(),
    context: Type.String(),
    message: Type.String(),
    user_full: Type.String({ description: '`<userDirectory>\\<userId>`, empty when either is empty.' }),
    appId: Type.Optional(Type.String({ description: 'Only when the context names an app.' })),
  },
  { additionalProperties: false, description: 'Keys in this order: messageType, host, command, user_directory, user_id, origin, context, message, user_full (then appId).' },
);

export const ActiveUsers = Type.Array(Type.String(), { description: 'Active users as `<userDirectory>/<userId>`, sorted.' });

export const TestEvent = Type.Object(
  { test: Type.Literal(true), from: Type.String({ description: 'Host name of the bridge.' }), at: Type.String({ format: 'date-time' }) },
  { additionalProperties: false },
);

// ---- The bridge's own topics ----

export const BRIDGE_FEATURES = ['task_alerts', 'user_events', 'task_start_commands', 'rest_publish', 'service_monitor', 'license_monitor', 'cloud_reload_alerts', 'home_assistant'] as const;
export type BridgeFeatureName = (typeof BRIDGE_FEATURES)[number];
export const BridgeFeature = Type.Union(BRIDGE_FEATURES.map((f) => Type.Literal(f)));

export const BridgeInfo = Type.Object(
  {
    version: Type.String({ description: 'butler-mqtt version.' }),
    clientId: Type.String({ description: 'MQTT client id of the main connection.' }),
    features: Type.Array(BridgeFeature, { description: 'Features the config switches on.' }) as unknown as TArray<TUnsafe<BridgeFeatureName>>,
    configSha256: Type.Union([Type.String({ pattern: '^[0-9a-f]{64}$' }), Type.Null()], { description: 'SHA-256 of the config file bytes (hex); null when the file could not be read.' }),
    startedAt: Type.String({ format: 'date-time', description: 'Start time (ISO 8601, UTC).' }),
  },
  { additionalProperties: false, description: 'Published once at start, retained.' },
);
export type BridgeInfoPayload = Static<typeof BridgeInfo>;

const Health = Type.Object(
  {
    reachable: Type.Union([Type.Boolean(), Type.Null()], { description: 'Last call succeeded; null before the first call.' }),
    lastError: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);

export const BridgeHealth = Type.Object(
  {
    at: Type.String({ format: 'date-time', description: 'When this snapshot was taken.' }),
    uptimeSeconds: Type.Integer({ minimum: 0 }),
    outbox: Type.Object(
      {
        depth: Type.Integer({ minimum: 0, description: 'Messages waiting for the broker.' }),
        oldestAgeSeconds: Type.Number({ minimum: 0, description: 'Age of the oldest waiting message; 0 when none.' }),
      },
      { additionalProperties: false },
    ),
    inbox: Type.Object({ depth: Type.Integer({ minimum: 0, description: 'Accepted events not yet handled.' }) }, { additionalProperties: false }),
    refused: Type.Integer({ minimum: 0, description: 'Messages refused since start (outbox full, rejected by the broker rules).' }),
    qrs: Type.Union([Health, Type.Null()], { description: 'Qlik Sense Repository Service; null when not configured.' }),
    qlikCloud: Type.Union(
      [
        Type.Object(
          {
            forwardBrokerConnected: Type.Boolean({ description: 'Connected to the broker Qlik Cloud events are forwarded to.' }),
            api: Type.Union([Health, Type.Null()], { description: 'Qlik Cloud REST API (enrichment); null when not known.' }),
          },
          { additionalProperties: false },
        ),
        Type.Null(),
      ],
      { description: 'Qlik Cloud; null when event forwarding is off.' },
    ),
  },
  { additionalProperties: false, description: 'Not retained; published every bridgeHealthIntervalSeconds.' },
);
export type BridgeHealthPayload = Static<typeof BridgeHealth>;

// ---- Home Assistant discovery ----

const HaDevice = Type.Object(
  {
    identifiers: Type.Array(Type.String(), { minItems: 1 }),
    name: Type.String(),
    manufacturer: Type.Optional(Type.String()),
    model: Type.Optional(Type.String()),
    sw_version: Type.Optional(Type.String()),
    via_device: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const HaDiscoveryConfig = Type.Object(
  {
    name: Type.Union([Type.String(), Type.Null()]),
    unique_id: Type.String(),
    object_id: Type.Optional(Type.String()),
    state_topic: Type.String(),
    value_template: Type.Optional(Type.String()),
    device_class: Type.Optional(Type.String()),
    state_class: Type.Optional(Type.String()),
    unit_of_measurement: Type.Optional(Type.String()),
    entity_category: Type.Optional(Type.Union([Type.Literal('diagnostic'), Type.Literal('config')])),
    icon: Type.Optional(Type.String()),
    payload_on: Type.Optional(Type.String()),
    payload_off: Type.Optional(Type.String()),
    expire_after: Type.Optional(Type.Integer({ minimum: 1 })),
    json_attributes_topic: Type.Optional(Type.String()),
    json_attributes_template: Type.Optional(Type.String()),
    availability_topic: Type.Optional(Type.String()),
    payload_available: Type.Optional(Type.String()),
    payload_not_available: Type.Optional(Type.String()),
    device: HaDevice,
    origin: Type.Optional(Type.Object({ name: Type.String(), sw_version: Type.Optional(Type.String()), support_url: Type.Optional(Type.String()) }, { additionalProperties: false })),
  },
  { additionalProperties: false, description: 'Home Assistant MQTT discovery config of one entity (sensor or binary_sensor), retained.' },
);
export type HaDiscoveryPayload = Static<typeof HaDiscoveryConfig>;

const TASK_STATUS = Type.String({ description: 'The TaskExecutionStatus name: NeverStarted, Triggered, Started, Queued, AbortInitiated, Aborting, Aborted, FinishedSuccess, FinishedFail, Skipped, Retry, Error, Reset, DistributionQueue, DistributionRunning.' });
const TASK_TYPE = Type.Union([Type.String({ description: 'reload, externalProgram, userSync, distribution, … (as QRS names the task type)' }), Type.Null()]);

export const TaskExecution = Type.Object(
  {
    taskId: Type.String(),
    taskName: Type.String(),
    taskType: TASK_TYPE,
    status: TASK_STATUS,
    statusCode: Type.Integer({ minimum: 0 }),
    executionId: Type.String(),
    executionResultId: Type.String(),
    appId: Type.Union([Type.String(), Type.Null()], { description: 'null for tasks without an app (external program, user sync).' }),
    executingNodeName: Type.String(),
    startTime: Type.String(),
    stopTime: Type.String(),
    duration: Type.Number({ description: 'Milliseconds, as QRS reports it.' }),
    scriptLogAvailable: Type.Boolean(),
    fileReferenceId: Type.String(),
    details: Type.Array(Type.Object({ detailsType: Type.Union([Type.Integer(), Type.Null()]), message: Type.String(), detailCreatedDate: Type.String() }, { additionalProperties: false })),
  },
  { additionalProperties: false, description: 'One finished task execution, from QRS change notifications and their catch-up.' },
);

export const TaskState = Type.Object(
  {
    taskId: Type.String(),
    taskName: Type.String(),
    taskType: TASK_TYPE,
    status: TASK_STATUS,
    executionId: Type.String(),
    startTime: Type.String(),
    stopTime: Type.String(),
    duration: Type.Number(),
    executingNodeName: Type.String(),
    consecutiveFailures: Type.Integer({ minimum: 0 }),
    lastSuccessTime: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false, description: 'The last outcome of a task (retained): a subscriber that joins later sees the state of every task at once.' },
);

const NULLABLE_TEXT = Type.Union([Type.String(), Type.Null()]);
const CLOUD_RELOAD_STATUS = Type.String({ description: 'The reloads API status: SUCCEEDED, FAILED, CANCELED, EXCEEDED_LIMIT (QUEUED, RELOADING and CANCELING are not finished and not published).' });

/** What the reload message and the app state share, in this order. */
const cloudAppFields = {
  tenant: Type.String({ description: 'The tenant name of the config.' }),
  tenantId: Type.String(),
  appId: Type.String(),
  appName: Type.String(),
  reloadId: Type.String(),
  status: CLOUD_RELOAD_STATUS,
  startTime: NULLABLE_TEXT,
  stopTime: NULLABLE_TEXT,
  duration: Type.Union([Type.Number({ description: 'Milliseconds.' }), Type.Null()]),
};

export const CloudAppReload = Type.Object(
  {
    ...cloudAppFields,
    errors: Type.Array(Type.Unknown()),
    intake: Type.String({ description: 'webhook or poller.' }),
    eventId: Type.String(),
    eventType: Type.String(),
  },
  { additionalProperties: false, description: 'One finished Qlik Cloud reload (succeeded too), from the webhook or the reloads poller.' },
);

export const CloudAppState = Type.Object(
  {
    ...cloudAppFields,
    consecutiveFailures: Type.Integer({ minimum: 0 }),
    lastSuccessTime: NULLABLE_TEXT,
  },
  { additionalProperties: false, description: 'The last reload outcome of a Qlik Cloud app (retained), with the fields of the Sense task state where they overlap.' },
);
