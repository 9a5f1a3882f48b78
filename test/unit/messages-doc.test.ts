// docs/messages.md shows an example of every message kind; each example payload must be exactly what
// the payload builders give for the inputs the page names, so the page cannot drift from the code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../support/bridge.ts';
import { parseDatagram, type SchedulerEvent } from '../../src/sense/datagram.ts';
import { parseUserEvent, type UserEvent } from '../../src/sense/user-event.ts';
import {
  activeUserCountPayload,
  activeUsersPayload,
  connectedStatusPayload,
  licenseExpiringPayload,
  licenseExpiredPayload,
  licenseStatusPayload,
  serviceRunningPayload,
  serviceStatusPayload,
  serviceStoppedPayload,
  sessionLegacyPayload,
  taskAbortedFullPayload,
  taskBasicPayload,
  taskFailureFullPayload,
  userEventJsonPayload,
  type ServiceState,
} from '../../src/alerts/payloads.ts';
import { taskStartResultPayload } from '../../src/alerts/task-start.ts';
import { cloudReloadBasicPayload, cloudReloadFullPayload } from '../../src/alerts/cloud-reload-alerts.ts';
import { parseCloudEvent } from '../../src/cloud/cloud-event.ts';

const doc = readFileSync(path.join(REPO_ROOT, 'docs/messages.md'), 'utf8');

// The QRS answers the page's examples were made from (GET /qrs/task/full and /qrs/app/full, one element each).
const TASK_FULL = JSON.parse(String.raw`{"id":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","createdDate":"2025-03-04T08:15:00.000Z","modifiedDate":"2026-10-01T12:00:00.000Z","modifiedByUserName":"CORP\\anna","customProperties":[{"id":"c1d2e3f4-1111-4aaa-8bbb-000000000001","value":"Finance","definition":{"id":"d1e2f3a4-2222-4aaa-8bbb-000000000001","name":"CostCenter","valueType":"Text","choiceValues":["Finance","Sales"],"privileges":null},"schemaPath":"CustomPropertyValue"}],"app":{"id":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","name":"Finance dashboard","appId":"","publishTime":"2025-03-04T08:20:00.000Z","published":true,"stream":{"id":"5a6b7c8d-3333-4aaa-8bbb-000000000001","name":"Finance","privileges":null},"savedInProductVersion":"14.187.4","availabilityStatus":0,"privileges":null},"isManuallyTriggered":false,"operational":{"id":"0d2a3b4c-4444-4aaa-8bbb-000000000001","lastExecutionResult":{"id":"7be1c2d3-5555-4aaa-8bbb-000000000001","executingNodeName":"sense-sched-1","status":8,"startTime":"2026-11-20T02:00:01.000Z","stopTime":"2026-11-20T02:03:12.000Z","duration":191000,"fileReferenceID":"00000000-0000-0000-0000-000000000000","scriptLogAvailable":false,"details":[],"scriptLogLocation":"","scriptLogSize":0,"privileges":null},"nextExecution":"2026-11-21T02:00:00.000Z","privileges":null},"name":"Nightly finance reload","taskType":0,"enabled":true,"taskSessionTimeout":1440,"maxRetries":0,"tags":[{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000001","name":"Nightly","privileges":null},{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000002","name":"Finance","privileges":null}],"privileges":null,"schemaPath":"ReloadTask"}`) as Record<string, unknown>;
const APP_FULL = JSON.parse(String.raw`{"id":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","customProperties":[{"id":"c1d2e3f4-1111-4aaa-8bbb-000000000002","value":"Gold","definition":{"id":"d1e2f3a4-2222-4aaa-8bbb-000000000002","name":"ServiceLevel","valueType":"Text","privileges":null},"schemaPath":"CustomPropertyValue"}],"owner":{"id":"0a1b2c3d-7777-4aaa-8bbb-000000000001","userId":"anna","userDirectory":"CORP","name":"Anna Berg","privileges":null},"name":"Finance dashboard","publishTime":"2025-03-04T08:20:00.000Z","published":true,"tags":[{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000002","name":"Finance","privileges":null}],"stream":{"id":"5a6b7c8d-3333-4aaa-8bbb-000000000001","name":"Finance","privileges":null},"fileSize":1048576,"privileges":null,"schemaPath":"App"}`) as Record<string, unknown>;

function scheduler(text: string): SchedulerEvent {
  const r = parseDatagram(text);
  if (!r.ok) assert.fail(r.error.detail);
  return r.value;
}
function proxy(text: string): UserEvent {
  const r = parseUserEvent(text);
  if (!r.ok) assert.fail(r.error.detail);
  return r.value;
}

const FAILED = scheduler(String.raw`/scheduler-reload-failed/;sense-sched-1;Nightly finance reload;Finance dashboard;CORP\\anna;9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f;2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f;2026-11-20 02:03:12,345;INFO;7be1c2d3-5555-4aaa-8bbb-000000000001;Max retries reached`);
const ABORTED = scheduler(String.raw`/scheduler-reload-aborted/;sense-sched-1;Nightly finance reload;Finance dashboard;CORP\\anna;9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f;2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f;2026-11-20 02:01:40,002;INFO;7be1c2d3-5555-4aaa-8bbb-000000000002;Execution State Change to Aborting`);
const SUCCESS = scheduler(String.raw`/scheduler-reloadtask-success/;sense-sched-1;Nightly finance reload;Finance dashboard;CORP\\anna;9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f;2026-11-21 02:03:02,118;INFO;7be1c2d3-5555-4aaa-8bbb-000000000003;Execution State Change to FinishedSuccess`.replace('2026-11-21', '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f;2026-11-21'));
const SESSION = proxy(String.raw`/qseow-proxy-session/;sense-proxy-1;Start session;CORP;anna;https://sense.corp.example;/app/2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f;Start session for user 'CORP\anna'`);
const ENGINE: ServiceState = {
  host: 'sense1',
  serviceName: 'QlikSenseEngineService',
  friendlyName: 'Engine',
  displayName: 'Qlik Sense Engine Service',
  dependencies: ['QlikSenseRepositoryService', 'QlikSenseServiceDispatcher'],
  startType: 'Automatic',
  exePath: '"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe" -service',
  status: 'STOPPED',
};
const CLOUD = (() => {
  const raw = String.raw`{"cloudEventsVersion":"0.1","source":"com.qlik/engine","contentType":"application/json","eventId":"5b3e2a10-8c1d-4e2f-9a3b-4c5d6e7f8a9b","eventTime":"2026-11-20T06:01:09Z","eventTypeVersion":"1.0.0","eventType":"com.qlik.v1.app.reload.finished","extensions":{"ownerId":"6601a1b2c3d4e5f6a7b8c9d0","tenantId":"Xq3tenant","userId":"6601a1b2c3d4e5f6a7b8c9d0","topLevelResourceId":"a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d"},"data":{"status":"error","name":"Sales forecast","reloadId":"6735b1c2d3e4f5a6b7c8d9e0","duration":"PT41S","errors":[{"code":"ScriptError"}],"isPartialReload":false,"isSessionApp":false}}`;
  const r = parseCloudEvent('qscloud/app/reload/a1b2c3d4-e5f6-4a1b-9c2d-3e4f5a6b7c8d', raw, { appReloadTopic: 'qscloud/app/reload', tenantId: 'Xq3tenant' });
  if (!r.ok) assert.fail(r.error.detail);
  return r.value;
})();

/** Every example: the payload as the code builds it. The page shows each one in a code block. */
const EXAMPLES: Record<string, string> = {
  status: connectedStatusPayload('127.0.0.1', 1883, 'butler-mqtt-sense1'),
  task_failure: taskBasicPayload(FAILED),
  task_failure_full: taskFailureFullPayload(FAILED, { taskFull: TASK_FULL, appFull: APP_FULL }),
  task_failure_full_no_qrs: taskFailureFullPayload(FAILED, {}, 'QRS not configured'),
  task_aborted: taskBasicPayload(ABORTED),
  task_aborted_full: taskAbortedFullPayload(ABORTED, { taskFull: TASK_FULL, appFull: APP_FULL }),
  task_success_full: taskFailureFullPayload(SUCCESS, { taskFull: TASK_FULL, appFull: APP_FULL }),
  service_stopped: serviceStoppedPayload(ENGINE, 'running'),
  service_running: serviceRunningPayload({ ...ENGINE, status: 'RUNNING' }, 'stopped'),
  service_status: serviceStatusPayload({ ...ENGINE, status: 'RUNNING' }),
  license: licenseStatusPayload({ licenseExpired: false, expiryDateStr: '2027-01-31', daysUntilExpiry: 56 }),
  license_expiring: licenseExpiringPayload(56, '2027-01-31'),
  license_expired: licenseExpiredPayload('2026-11-30'),
  session_legacy: sessionLegacyPayload(SESSION),
  user_event: userEventJsonPayload(SESSION),
  active_count: activeUserCountPayload(2),
  active_users: activeUsersPayload(['CORP/anna', 'EXT/bo']),
  task_start_result: taskStartResultPayload('9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f', 'ops-42', 'started', 'task 9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f started (no start filter)'),
  cloud_basic: cloudReloadBasicPayload(CLOUD, null),
  cloud_full: cloudReloadFullPayload(CLOUD, null),
};

if (process.env.PRINT_MESSAGE_EXAMPLES) for (const [k, v] of Object.entries(EXAMPLES)) process.stdout.write(`${k}\n${v}\n\n`);

for (const [name, payload] of Object.entries(EXAMPLES)) {
  test(`docs/messages.md shows the ${name} example byte for byte`, () => {
    assert.ok(doc.includes(`\n${payload}\n`), `docs/messages.md lacks, on a line of its own:\n${payload}`);
  });
}

test('the pretty-printed task_failure_full on the page is the same object as the compact one', () => {
  const block = /<!-- pretty task_failure_full -->\n```json\n([^]*?)\n```/.exec(doc);
  assert.ok(block, 'the pretty-printed block is marked');
  assert.deepEqual(JSON.parse(block[1]!), JSON.parse(EXAMPLES['task_failure_full']!));
  assert.equal(block[1], JSON.stringify(JSON.parse(EXAMPLES['task_failure_full']!), null, 2));
});
