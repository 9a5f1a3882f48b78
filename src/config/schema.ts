// The one schema for everything butler-mqtt reads from a Butler config file: types, defaults and
// the "expected …" text used in error messages. Butler's own keys keep Butler's names and template
// defaults; keys that butler-mqtt adds are all optional. Unknown keys are allowed (Butler has many more).
import Type, { type Static, type TSchema } from 'typebox';

/** Extra annotations read by the error formatter and the docs generator. */
interface Annotations {
  default?: unknown;
  description?: string;
  /** Human text for "expected …" in validation errors. */
  expected?: string;
  /** Added by butler-mqtt (not a Butler key). */
  added?: boolean;
  /** The value is a secret: masked by check-config, the docs and every log line. */
  secret?: boolean;
}

const bool = (def: boolean, description: string, extra: Annotations = {}) =>
  Type.Boolean({ default: def, description, expected: 'true or false', ...extra });

const str = (def: string, description: string, extra: Annotations = {}) =>
  Type.String({ default: def, description, expected: 'a string', ...extra });

const int = (def: number, min: number, max: number, description: string, extra: Annotations = {}) =>
  Type.Integer({ default: def, minimum: min, maximum: max, description, expected: `an integer ${min}-${max}`, ...extra });

const port = (def: number, description: string, extra: Annotations = {}) => int(def, 1, 65535, description, extra);

const topic = (def: string, description: string, extra: Annotations = {}) =>
  Type.String({ default: def, description, expected: 'an MQTT topic', ...extra });

const obj = <P extends Record<string, TSchema>>(props: P, description = '', extra: Annotations = {}) =>
  Type.Object(props, { additionalProperties: true, default: {}, description, expected: 'a mapping', ...extra });

const nameValueList = (description: string) =>
  Type.Array(Type.Object({ name: Type.String({ expected: 'a string' }), value: Type.String({ expected: 'a string' }) }, { additionalProperties: true, expected: 'a {name, value} mapping' }), {
    default: [],
    description,
    expected: 'a list of {name, value}',
  });

const MqttTls = obj(
  {
    enable: bool(false, 'Connect with TLS (mqtts).', { added: true }),
    caFile: str('', 'CA certificate file (PEM) to verify the broker; empty = system CAs.', { added: true }),
    certFile: str('', 'Client certificate file (PEM) for brokers that require one.', { added: true }),
    keyFile: str('', 'Client private key file (PEM).', { added: true }),
    rejectUnauthorized: bool(true, 'Verify the broker certificate.', { added: true }),
  },
  'TLS to the main broker.',
  { added: true },
);

const AzureEventGrid = obj(
  {
    enable: bool(false, 'Connect to an Azure Event Grid namespace MQTT broker.'),
    clientId: str('butler-mqtt', 'Client id (Event Grid client session name).'),
    clientCertFile: str('', 'Client certificate file (PEM).'),
    clientKeyFile: str('', 'Client private key file (PEM).'),
    authenticationName: str('', 'Event Grid client authentication name (MQTT username); empty = the clientId.', { added: true }),
    caFile: str('', 'CA certificate file (PEM); empty = system CAs.', { added: true }),
  },
  'Azure Event Grid mode.',
);

const Delivery = obj(
  {
    qos: Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)], { default: 1, description: 'QoS for published messages (capped at 1 in Event Grid mode).', expected: '0, 1 or 2' }),
    outboxFile: str('data/butler-mqtt.sqlite', 'SQLite file of the durable outbox and inbox (relative to the config file).'),
    maxMessages: int(100000, 1, 100000000, 'Outbox bound: messages waiting.'),
    maxBytes: int(268435456, 1024, 1099511627776, 'Outbox bound: payload bytes waiting.'),
    highWaterPercent: int(80, 1, 100, 'Readiness turns false above this share of either outbox bound.'),
    inFlightWindow: int(100, 1, 65535, 'QoS 1/2 messages sent and not yet acknowledged, at most.'),
    shutdownFlushSeconds: int(5, 0, 300, 'On shutdown, how long to keep delivering before closing.'),
    deadLetterAfterDisconnects: int(3, 0, 1000, 'A message the broker answers with a disconnect this many times in a row (an accepted reconnect each time) is moved to the dead-letter table; 0 = never.'),
  },
  'Durable delivery.',
  { added: true },
);

const Availability = obj(
  {
    enable: bool(true, 'Publish online/offline with a last-will.'),
    topic: topic('qliksense/butler/mqtt/availability', 'Availability topic.'),
    onlinePayload: str('online', 'Payload when connected.'),
    offlinePayload: str('offline', 'Payload on shutdown and as last-will.'),
    retain: Type.Union([Type.Boolean(), Type.Null()], { default: null, description: 'Retain the availability messages; empty = true, false in Event Grid mode.', expected: 'true, false or empty' }),
  },
  'Availability topic.',
  { added: true },
);

// The bridge's own topics and Home Assistant discovery (src/alerts/bridge-info.ts, src/alerts/ha-discovery.ts).
const HomeAssistant = obj(
  {
    enable: bool(false, 'Announce the bridge, its sensors and the monitored tasks and apps to Home Assistant (MQTT discovery). When switched off again, the announcements are removed.'),
    discoveryPrefix: topic('homeassistant', 'Discovery prefix configured in Home Assistant\'s MQTT integration.'),
    statusTopic: topic('homeassistant/status', 'Home Assistant\'s birth/last-will topic; every "online" there re-announces the entities.'),
  },
  'Home Assistant MQTT discovery (see docs/home-assistant.md).',
  { added: true },
);

const EmbeddedBroker = obj(
  {
    enable: bool(false, 'Run an MQTT broker inside butler-mqtt (for trying it out).'),
    host: str('127.0.0.1', 'Address the embedded broker listens on.'),
    port: port(1883, 'Port of the embedded broker.'),
  },
  'Embedded broker.',
  { added: true },
);

const Reconnect = obj(
  {
    minDelayMs: int(1000, 10, 3600000, 'First reconnect delay.'),
    maxDelayMs: int(30000, 10, 3600000, 'Largest reconnect delay (exponential backoff with jitter in between).'),
  },
  'Reconnect backoff.',
  { added: true },
);

const MqttForward = obj(
  {
    enable: bool(false, 'Subscribe to Qlik Cloud events forwarded to an MQTT broker.'),
    broker: obj({
      host: str('', 'Forward broker host.'),
      port: port(8883, 'Forward broker port.'),
      username: str('', 'Forward broker user.'),
      password: str('', 'Forward broker password.', { secret: true }),
      caFile: str('', 'CA certificate (PEM) of the forward broker; empty = system CAs.', { added: true }),
      rejectUnauthorized: bool(true, 'Verify the forward broker certificate.', { added: true }),
    }),
    topic: obj({
      subscriptionRoot: topic('qscloud/#', 'Subscription on the forward broker.'),
      appReload: topic('qscloud/app/reload', 'Topic prefix of app reload events.'),
    }),
  },
  'Qlik Cloud event forwarding.',
);

const MqttConfig = obj(
  {
    enable: bool(false, 'Master switch for MQTT.'),
    brokerHost: str('', 'Main broker host.', { expected: 'a host name or IP address' }),
    brokerPort: port(1883, 'Main broker port.'),
    username: str('', 'Broker user name.', { added: true }),
    password: str('', 'Broker password.', { added: true, secret: true }),
    tls: MqttTls,
    protocolVersion: Type.Union([Type.Literal('3.1.1'), Type.Literal('5'), Type.Literal(5)], { default: '3.1.1', description: 'MQTT protocol version.', expected: '"3.1.1" or "5"', added: true }),
    clientId: str('', 'Fixed client id; empty = butler-mqtt-<hostname>.', { added: true }),
    keepaliveSeconds: int(60, 0, 65535, 'MQTT keepalive.', { added: true }),
    connectStatusRetain: bool(false, 'Retain the "Connected to MQTT broker …" status message (Butler does not), so a subscriber that joins later sees it.', { added: true }),
    reconnect: Reconnect,
    azureEventGrid: AzureEventGrid,
    delivery: Delivery,
    availability: Availability,
    bridgeTopicRoot: topic('qliksense/butler/mqtt', 'Root of the bridge\'s own topics: <root>/bridge/info (retained: version, client id, features, config hash) and <root>/bridge/health (periodic); empty = off.', { added: true }),
    bridgeHealthIntervalSeconds: int(60, 0, 86400, 'How often <root>/bridge/health is published; 0 = only at start.', { added: true }),
    homeAssistant: HomeAssistant,
    embeddedBroker: EmbeddedBroker,
    qlikSenseCloud: obj({ event: obj({ mqttForward: MqttForward }) }),
    taskFailureSendFull: bool(true, 'Also publish the full failure JSON.'),
    taskAbortedSendFull: bool(true, 'Also publish the full aborted JSON.'),
    subscriptionRootTopic: topic('qliksense/#', 'Subscription for inbound commands (may contain wildcards); taskStartTopic must be matched by it. The bridge subscribes to taskStartTopic itself unless subscribeWholeRoot is true, the root is a shared subscription ($share/…) or highAvailability is on.'),
    subscribeWholeRoot: bool(false, 'Subscribe to all of subscriptionRootTopic, as Butler does, instead of taskStartTopic alone. The root matches the alerts the bridge publishes itself, so the broker sends each of them back to it: about a tenth of the throughput in a storm of alerts.', { added: true }),
    taskStartTopic: topic('qliksense/start_task', 'Task start commands.'),
    taskStartResultTopic: topic('', 'Outcome of each task start command; empty = off.', { added: true }),
    taskStartAcceptRetained: bool(false, 'Take retained messages on taskStartTopic as commands. Off: they are ignored and counted, since a retained command would start its task again at every restart of the bridge.', { added: true }),
    taskStartCorrelationTtlMinutes: int(1440, 1, 525600, 'How long a command\'s taskId + correlationId is remembered (on disk, across restarts): a command repeated with the same correlationId within this time starts the task once.', { added: true }),
    taskStartConcurrency: int(4, 1, 100, 'Task start commands handled at once.', { added: true }),
    taskFailureTopic: topic('qliksense/task_failure', 'Failed reload: task name.'),
    taskFailureFullTopic: topic('qliksense/task_failure_full', 'Failed reload: full JSON.'),
    taskFailureServerStatusTopic: topic('qliksense/butler/task_failure_server', 'UDP server status (start/error).'),
    taskAbortedTopic: topic('qliksense/task_aborted', 'Aborted reload: task name.'),
    taskAbortedFullTopic: topic('qliksense/task_aborted_full', 'Aborted reload: full JSON.'),
    taskSuccessTopic: topic('', 'Successful reload: task name; empty = off.', { added: true }),
    taskSuccessFullTopic: topic('', 'Successful reload: full JSON; empty = off.', { added: true }),
    taskEventsTopicRoot: topic('qliksense/task', 'Root of the per-task topics of qrsChangeNotifications: `<root>/<taskId>/execution` (every finished execution) and `<root>/<taskId>/state` (retained last outcome).', { added: true }),
    serviceRunningTopic: topic('qliksense/service_running', 'Prefix: service changed to running.'),
    serviceStoppedTopic: topic('qliksense/service_stopped', 'Prefix: service changed to stopped.'),
    serviceStatusTopic: topic('qliksense/service_status', 'Prefix: service status on every check.'),
    qlikSenseServerLicenseTopic: topic('qliksense/qliksense_server_license', 'Server license status.'),
    qlikSenseServerLicenseExpireTopic: topic('qliksense/qliksense_server_license_expire', 'Server license expiry alert.'),
    cloudReloadFailureTopic: topic('qscloud/butler/reload_failure', 'Failed Qlik Cloud reload: app name.', { added: true }),
    cloudReloadFailureFullTopic: topic('qscloud/butler/reload_failure_full', 'Failed Qlik Cloud reload: full JSON.', { added: true }),
    cloudEventsTopicRoot: topic('qlikcloud', 'Root of the per-tenant Qlik Cloud topics: <root>/<tenant>/app/<appId>/reload (every finished reload) and …/state (retained).', { added: true }),
    sessionStartTopic: topic('qliksense/session/start', 'User session started: `<host>: <userDir>/<userId>` (Butler 2–4). Only with udpServerConfig.sessionConnectionEvents.enable; empty = off.', { added: true }),
    sessionStopTopic: topic('qliksense/session/stop', 'User session stopped: `<host>: <userDir>/<userId>`. Only with sessionConnectionEvents.enable; empty = off.', { added: true }),
    connectionOpenTopic: topic('qliksense/connection/open', 'Connection opened: `<host>: <userDir>/<userId>`. Only with sessionConnectionEvents.enable; empty = off.', { added: true }),
    connectionCloseTopic: topic('qliksense/connection/close', 'Connection closed: `<host>: <userDir>/<userId>`. Only with sessionConnectionEvents.enable; empty = off.', { added: true }),
    userEventTopic: topic('qliksense/users/event', 'Every session and connection event as JSON (Butler SOS keys). Only with sessionConnectionEvents.enable; empty = off.', { added: true }),
    activeUserCountTopic: topic('qliksense/users/active/count', 'Retained number of active users, on every change. Only with sessionConnectionEvents.enable; empty = off.', { added: true }),
    activeUsersTopic: topic('qliksense/users/active/usernames', 'Retained JSON list of active users (`<userDir>/<userId>`, sorted), on every change. Only with sessionConnectionEvents.enable; empty = off.', { added: true }),
  },
  'MQTT.',
);

const UdpServerConfig = obj(
  {
    enable: bool(false, 'Listen for Sense scheduler log-appender datagrams.'),
    serverHost: str('localhost', 'Address to listen on.', { expected: 'a host name or IP address' }),
    portTaskFailure: port(9998, 'Port for reload task events.'),
    maxMessageSize: int(65507, 1, 65507, 'Largest datagram accepted, bytes.'),
    enableSourceValidation: bool(false, 'Accept datagrams only from allowedSources.'),
    allowedSources: Type.Array(Type.String({ expected: 'a string' }), { default: [], description: 'IPv4 addresses or host names (resolved at start).', expected: 'a list of addresses' }),
    messageQueue: obj({
      maxConcurrent: int(10, 1, 1000, 'Events handled at once.'),
      maxSize: int(200, 1, 1000000, 'Events waiting in memory; more wait in the durable inbox.'),
      backpressureThreshold: int(80, 1, 100, 'Warn when the queue is this % full.'),
    }),
    rateLimit: obj({
      enable: bool(false, 'Limit datagrams per minute.'),
      maxMessagesPerMinute: int(600, 1, 100000000, 'Datagrams per fixed one-minute window.'),
    }),
    deduplication: obj({
      enable: bool(true, 'Drop repeated executionIds.'),
      ttlMinutes: int(10, 1, 10080, 'How long an executionId is remembered.'),
    }),
    receiveBufferBytes: int(8388608, 65536, 268435456, 'Socket receive buffer requested from the OS.', { added: true }),
    receiveQueueBytes: int(8388608, 65536, 1073741824, 'Memory between each UDP receive thread and the processing: datagrams read and not yet taken, at most (more are refused and counted as intake_full). As traffic goes by all of it becomes resident memory; 8 MiB holds about 10,000 reload failures.', { added: true }),
    processingNice: int(10, 0, 19, 'Linux: added to the nice value of every thread of the bridge but the UDP receive threads (the main thread, which enriches, stores and publishes, and the garbage-collector and I/O threads), so the receive threads empty the sockets first when the CPU is busy. 0 leaves the priorities unchanged.', { added: true }),
    receiveThread: Type.Union([Type.Literal('auto'), Type.Literal('native'), Type.Literal('javascript')], {
      default: 'auto',
      description:
        'What reads each UDP socket: native (Linux: a C thread that reads up to 32 datagrams per system call, built when the package is installed, needs a C compiler and the Node.js headers), javascript (a worker thread, every platform) or auto (native where it is built, else javascript; the start-up log says which). native fails the start when it is not built.',
      expected: '"auto", "native" or "javascript"',
      added: true,
    }),
    inboxMaxEvents: int(100000, 100, 100000000, 'Accepted events waiting in the durable inbox, at most.', { added: true }),
    portSessionConnectionEvents: port(9997, 'Port for Sense proxy session/connection events (same serverHost, allow-list, size and rate-limit rules as task events).', { added: true }),
    sessionConnectionEvents: obj(
      {
        enable: bool(false, 'Listen for Sense proxy session/connection datagrams on portSessionConnectionEvents and publish them (mqttConfig session topics). Needs udpServerConfig.enable.'),
        sessionIdleMinutes: int(480, 1, 100000, 'A user with no session or connection event for this long is no longer counted as active (covers lost stop events).'),
        excludeUsers: Type.Array(Type.Object({ directory: Type.String({ expected: 'a string', description: 'User directory, e.g. INTERNAL.' }), userId: Type.String({ expected: 'a string', description: 'User id, e.g. sa_repository.' }) }, { additionalProperties: true }), {
          default: [],
          description: 'Users whose events are dropped (directory and userId compared ignoring case), e.g. service accounts.',
          expected: 'a list of {directory, userId}',
        }),
      },
      'Session and connection events from the Qlik Sense Proxy (see docs/sense-setup.md).',
      { added: true },
    ),
  },
  'UDP input.',
);

const RestServerConfig = obj(
  {
    enable: bool(false, 'Start the HTTP server (REST, status page, metrics).'),
    serverHost: str('localhost', 'Address to listen on.'),
    serverPort: port(8080, 'Port to listen on.'),
    tls: obj({
      enable: bool(false, 'Serve HTTPS.'),
      cert: str('', 'Server certificate file (PEM).'),
      key: str('', 'Server private key file (PEM).'),
      ca: str('', 'CA file (PEM) of the server certificate chain.'),
    }),
    apiToken: str('', 'When set, REST calls need "Authorization: Bearer <token>" or "X-Api-Token".', { added: true, secret: true }),
    publishAllowedTopicPrefixes: Type.Array(Type.String(), { default: [], description: 'Topic prefixes the publish endpoint accepts; empty = any.', expected: 'a list of topic prefixes', added: true }),
    rateLimitPerMinute: int(100, 1, 1000000, 'REST requests per client per minute.', { added: true }),
    bodyLimitBytes: int(1048576, 1024, 67108864, 'Largest request body.', { added: true }),
    waitTimeoutMs: int(10000, 100, 600000, 'How long ?wait=true waits for the broker.', { added: true }),
    testEventButton: bool(false, 'Show a "send test event" button on the status page.', { added: true }),
    allowedHosts: Type.Array(Type.String({ expected: 'a host name' }), {
      default: [],
      description:
        'Host names (as in the Host header, port ignored) the HTTP server answers to, besides localhost, 127.0.0.1, ::1 and serverHost (with serverHost 0.0.0.0 or ::, also this machine\'s host name and addresses); other Hosts get 421. "*" = any (no DNS-rebinding protection).',
      expected: 'a list of host names',
      added: true,
    }),
  },
  'HTTP server.',
);

const ConfigQrs = obj(
  {
    host: str('', 'Repository service host.', { expected: 'a host name or IP address' }),
    port: port(4242, 'Repository service port.'),
    useSSL: bool(true, 'Use HTTPS.'),
    rejectUnauthorized: bool(false, 'Verify the QRS server certificate.'),
    headers: obj({ static: nameValueList('Headers sent on every call (X-Qlik-User).') }),
    timeoutMs: int(10000, 100, 600000, 'Timeout per call.', { added: true }),
    retries: int(3, 0, 20, 'Retries on network errors and 5xx.', { added: true }),
    cacheTtlSeconds: int(60, 0, 86400, 'How long task/app metadata is cached.', { added: true }),
  },
  'Qlik Sense Repository Service.',
);

const Cert = obj(
  {
    clientCert: str('', 'Sense client certificate (PEM).'),
    clientCertKey: str('', 'Sense client key (PEM).', { secret: false }),
    clientCertCA: str('', 'Sense root CA (PEM).'),
  },
  'Sense certificates.',
);

const StartTaskFilter = obj(
  {
    enable: bool(false, 'Only start tasks that match allowTask.'),
    allowTask: obj({
      taskId: Type.Array(Type.String(), { default: [], expected: 'a list of task ids', description: 'Allowed task ids.' }),
      tag: Type.Array(Type.String(), { default: [], expected: 'a list of tag names', description: 'Tasks with any of these tags.' }),
      customProperty: nameValueList('Tasks with any of these custom property values.'),
    }),
  },
  'Task start filter.',
);

const Schedule = (def: string, description: string) => Type.String({ default: def, description, expected: 'a schedule like "every 30 seconds" or a cron expression' });

const QlikSenseLicense = obj({
  serverLicenseMonitor: obj({
    enable: bool(false, 'Check the server license.'),
    frequency: Schedule('every 24 hours', 'How often.'),
    alert: obj({ thresholdDays: int(60, 0, 100000, 'Alert when this many days or fewer are left.') }),
    destination: obj({
      mqtt: obj({
        enable: bool(false, 'Publish license status over MQTT.'),
        sendRecurring: obj({ enable: bool(true, 'Publish the status on every check.') }),
        sendAlert: obj({ enable: bool(true, 'Publish the expiry alert.') }),
      }),
    }),
  }),
});

const ServiceMonitor = obj(
  {
    enable: bool(false, 'Check Windows services of the Sense nodes.'),
    frequency: Schedule('every 30 seconds', 'How often.'),
    checkTimeoutSeconds: int(15, 1, 600, 'Timeout of one host check.', { added: true }),
    scCommand: str('', 'Program that answers like sc.exe (query/qc); empty = sc.exe, on Windows only. Set it to run the monitor elsewhere through a wrapper that gives the same output.', { added: true }),
    monitor: Type.Array(
      Type.Object(
        {
          host: Type.String({ expected: 'a host name' }),
          services: Type.Array(Type.Object({ name: Type.String({ expected: 'a service name' }), friendlyName: Type.String({ default: '', expected: 'a string' }) }, { additionalProperties: true }), { default: [], expected: 'a list of {name, friendlyName}' }),
        },
        { additionalProperties: true },
      ),
      { default: [], description: 'Hosts and their services.', expected: 'a list of {host, services}' },
    ),
    alertDestination: obj({ mqtt: obj({ enable: bool(false, 'Publish service events over MQTT.') }) }),
  },
  'Windows service monitor.',
);

const CloudTenant = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'Short name: in the webhook URL (/qlik-cloud/webhook/<name>) and the topics (<cloudEventsTopicRoot>/<name>/…).', expected: 'letters, digits, _ or -, at most 64' }),
    url: str('', 'Tenant URL, e.g. https://tenant.eu.qlikcloud.com.'),
    tenantId: str('', 'Tenant id; when set, events and reloads of another tenant are refused.'),
    apiKey: str('', 'API key of a tenant admin (reloads API, enrichment, webhook CLI).', { secret: true }),
    caFile: str('', 'CA file (PEM) for the tenant URL; empty = system CAs.'),
    webhookSecret: str('', 'Webhook secret (32-64 characters): deliveries without a valid Qlik-Signature are refused (401). Empty = unsigned deliveries are accepted.', { secret: true }),
    webhook: bool(true, 'Accept webhook deliveries for this tenant (needs restServerConfig.enable).'),
    poller: bool(true, 'Poll the reloads API for finished reloads (needs url and apiKey).'),
    pollIntervalSeconds: int(60, 1, 86400, 'How often the reloads API is polled.'),
    pollLookbackMinutes: int(60, 1, 10080, 'On the first poll (no cursor yet), how far back finished reloads are delivered.'),
    pollOverlapMinutes: int(10, 0, 1440, 'Each poll re-reads reloads that finished this long before the cursor (late records; repeats are duplicates).'),
    enrich: bool(true, 'Look up the app name, reload record and script log for failure alerts.'),
  },
  { additionalProperties: true, expected: 'a tenant mapping' },
);

const QlikSenseCloud = obj(
  {
    enable: bool(false, 'Enrich Qlik Cloud events through the Qlik Cloud REST API.'),
    event: obj({
      mqtt: obj({
        tenant: obj({
          id: str('', 'Tenant id.'),
          tenantUrl: str('', 'Tenant URL, e.g. https://tenant.eu.qlikcloud.com.'),
          caFile: str('', 'CA file (PEM) for the tenant URL; empty = system CAs.', { added: true }),
          auth: obj({ jwt: obj({ token: str('', 'API key (JWT).', { secret: true }) }) }),
        }),
      }),
    }),
    tenants: Type.Array(CloudTenant, {
      default: [],
      description:
        'Tenants whose reload events come straight from Qlik Cloud (signed webhooks and the reloads API poller; see docs/qlik-cloud-events.md). The first tenant takes its empty url, apiKey, tenantId and caFile from the single-tenant keys above (event.mqtt.tenant).',
      expected: 'a list of tenants ({name, url, apiKey, webhookSecret, webhook, poller, …})',
      added: true,
    }),
    webhookBodyLimitBytes: int(262144, 1024, 16777216, 'Largest webhook delivery accepted (413 above).', { added: true }),
  },
  'Qlik Cloud.',
);

const QrsChangeNotifications = obj(
  {
    enable: bool(false, 'Follow every task execution through QRS change notifications (ExecutionResult updates) with a periodic catch-up read, instead of or besides the log appenders. Needs configQRS and the REST server (restServerConfig.enable), which serves the callback.', { added: true }),
    callbackUrl: str('', 'The URL of this bridge\'s callback endpoint as the Sense central node reaches it, e.g. `http://bridge.corp:8080/v4/qrs/notification`; the path must be /v4/qrs/notification. Empty: no subscription, the catch-up read alone finds the outcomes.', { added: true }),
    catchUpIntervalSeconds: int(60, 5, 86400, 'How often every execution result modified since the last one handled is read from QRS (also at every start), so an outcome is not lost while the bridge was down or a callback went missing.', { added: true }),
    lookbackMinutes: int(60, 0, 43200, 'At the very first start (no position kept yet): how far back execution results are read.', { added: true }),
  },
  'Task outcomes from QRS change notifications.',
  { added: true },
);

const HighAvailability = obj(
  {
    enable: bool(false, 'Run as one of two instances (active/standby) coordinated through the broker; see docs/high-availability.md.', { added: true }),
    instanceId: str('', 'Name of this instance in the pair (a topic level: no / + # $); empty = the host name.', { added: true }),
    priority: int(100, 0, 1000000, 'When no instance is active, the live instance with the highest priority becomes active (ties: the lower instanceId).', { added: true }),
    group: topic('butler-mqtt', 'Topic prefix of the coordination messages (<group>/instances/<instanceId>, <group>/heartbeat/<instanceId>); both instances use the same group.', { added: true }),
    failoverSeconds: int(10, 1, 3600, 'A standby takes over when the active announced itself offline (its last will) or sent no heartbeat for this long.', { added: true }),
    heldMaxAgeMinutes: int(60, 1, 10080, 'A standby drops a held message nobody was seen publishing after this long (counted and logged).', { added: true }),
  },
  'Active/standby pair: two instances, one publishes.',
  { added: true },
);

export const ButlerSchema = obj({
  logLevel: Type.Union(
    ['error', 'warn', 'info', 'verbose', 'debug', 'silly'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'Log level.', expected: 'one of error, warn, info, verbose, debug, silly' },
  ),
  fileLogging: bool(false, 'Also write logs to a file in logDirectory.'),
  logDirectory: str('log', 'Directory of the log file.'),
  logFileMaxBytes: int(10485760, 1024, 1099511627776, 'Size at which the log file is rotated (butler-mqtt.log becomes butler-mqtt.log.1).', { added: true }),
  logFileCount: int(5, 0, 1000, 'Rotated log files kept besides the current one.', { added: true }),
  mqttConfig: MqttConfig,
  highAvailability: HighAvailability,
  udpServerConfig: UdpServerConfig,
  restServerConfig: RestServerConfig,
  restServerEndpointsEnable: obj({ mqttPublishMessage: bool(false, 'Enable PUT /v4/mqttpublishmessage.') }),
  startTaskFilter: StartTaskFilter,
  configQRS: ConfigQrs,
  cert: Cert,
  qlikSenseLicense: QlikSenseLicense,
  serviceMonitor: ServiceMonitor,
  qlikSenseCloud: QlikSenseCloud,
  qrsChangeNotifications: QrsChangeNotifications,
});

export const ConfigSchema = Type.Object({ Butler: ButlerSchema }, { additionalProperties: true, expected: 'a mapping with a top-level "Butler" key' });

export type ButlerConfig = Static<typeof ButlerSchema>;
export type MqttConfig = ButlerConfig['mqttConfig'];

/** The sections butler-mqtt reads; everything else under Butler is ignored. */
export const READ_SECTIONS = Object.keys(ButlerSchema.properties);
