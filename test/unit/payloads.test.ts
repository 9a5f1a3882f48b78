// Butler byte compatibility: each payload builder against a hand-written expected string. The QRS
// objects are realistic task/full and app/full responses (as JSON text, the way QRS sends them),
// and the full payloads must carry them through byte for byte.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDatagram, type SchedulerEvent } from '../../src/sense/datagram.ts';
import { parseUserEvent, type UserEvent } from '../../src/sense/user-event.ts';
import {
  collapseDoubleBackslashes,
  connectedStatusPayload,
  licenseExpiredPayload,
  licenseExpiringPayload,
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

// One element of GET /qrs/task/full?filter=id eq 9f1c2d3e-…, as QRS sends it.
const TASK_FULL_JSON = String.raw`{"id":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","createdDate":"2025-03-04T08:15:00.000Z","modifiedDate":"2026-10-01T12:00:00.000Z","modifiedByUserName":"CORP\\anna","customProperties":[{"id":"c1d2e3f4-1111-4aaa-8bbb-000000000001","createdDate":"2025-03-04T08:16:00.000Z","modifiedDate":"2025-03-04T08:16:00.000Z","modifiedByUserName":"CORP\\anna","value":"Finance","definition":{"id":"d1e2f3a4-2222-4aaa-8bbb-000000000001","name":"CostCenter","valueType":"Text","choiceValues":["Finance","Sales"],"privileges":null},"schemaPath":"CustomPropertyValue"}],"app":{"id":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","name":"Finance dashboard","appId":"","publishTime":"2025-03-04T08:20:00.000Z","published":true,"stream":{"id":"5a6b7c8d-3333-4aaa-8bbb-000000000001","name":"Finance","privileges":null},"savedInProductVersion":"14.187.4","migrationHash":"a5f1c3e2b7d94e0f8c6a2b1d3e4f5a6b7c8d9e0f","availabilityStatus":0,"privileges":null},"isManuallyTriggered":false,"operational":{"id":"0d2a3b4c-4444-4aaa-8bbb-000000000001","lastExecutionResult":{"id":"7be1c2d3-5555-4aaa-8bbb-000000000001","executingNodeName":"sense-sched-1","status":8,"startTime":"2026-11-20T02:00:01.000Z","stopTime":"2026-11-20T02:03:12.000Z","duration":191000,"fileReferenceID":"00000000-0000-0000-0000-000000000000","scriptLogAvailable":false,"details":[],"scriptLogLocation":"","scriptLogSize":0,"privileges":null},"nextExecution":"2026-11-21T02:00:00.000Z","privileges":null},"name":"Nightly finance reload","taskType":0,"enabled":true,"taskSessionTimeout":1440,"maxRetries":0,"tags":[{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000001","name":"Nightly","privileges":null},{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000002","name":"Finance","privileges":null}],"privileges":null,"schemaPath":"ReloadTask"}`;

// One element of GET /qrs/app/full?filter=id eq 2c7e8f90-…, with non-ASCII text and characters
// JSON must escape, so pass-through is checked byte for byte.
const APP_FULL_JSON = String.raw`{"id":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","createdDate":"2025-03-04T08:10:00.000Z","modifiedDate":"2026-11-19T02:03:10.000Z","modifiedByUserName":"INTERNAL\\sa_scheduler","customProperties":[{"id":"c1d2e3f4-1111-4aaa-8bbb-000000000002","value":"Gold","definition":{"id":"d1e2f3a4-2222-4aaa-8bbb-000000000002","name":"ServiceLevel","valueType":"Text","privileges":null},"schemaPath":"CustomPropertyValue"}],"owner":{"id":"0a1b2c3d-7777-4aaa-8bbb-000000000001","userId":"anna","userDirectory":"CORP","name":"Anna Berg","privileges":null},"name":"Finance dashboard","appId":"","sourceAppId":"00000000-0000-0000-0000-000000000000","targetAppId":"00000000-0000-0000-0000-000000000000","publishTime":"2025-03-04T08:20:00.000Z","published":true,"tags":[{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000002","name":"Finance","privileges":null}],"description":"Försäljning & budget – \"Q4\" <draft>","version":"1","lastReloadTime":"2026-11-19T02:03:10.000Z","thumbnail":"","savedInProductVersion":"14.187.4","migrationHash":"a5f1c3e2b7d94e0f8c6a2b1d3e4f5a6b7c8d9e0f","dynamicColor":"","availabilityStatus":0,"stream":{"id":"5a6b7c8d-3333-4aaa-8bbb-000000000001","name":"Finance","privileges":null},"fileSize":1048576,"privileges":null,"schemaPath":"App"}`;

const taskFull = JSON.parse(TASK_FULL_JSON) as Record<string, unknown>;
const appFull = JSON.parse(APP_FULL_JSON) as Record<string, unknown>;

function event(text: string): SchedulerEvent {
  const r = parseDatagram(text);
  if (!r.ok) assert.fail(`fixture datagram refused: ${r.error.detail}`);
  return r.value;
}

function userEvent(text: string): UserEvent {
  const r = parseUserEvent(text);
  if (!r.ok) assert.fail(`fixture datagram refused: ${r.error.detail}`);
  return r.value;
}

// The user field arrives with a doubled backslash; Butler collapses it to one in the full payloads.
const FAILED = event(
  String.raw`/scheduler-reload-failed/;sense-sched-1;Nightly finance reload;Finance dashboard;CORP\\anna;9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f;2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f;2026-11-20 02:03:12,345;ERROR;7be1c2d3-5555-4aaa-8bbb-000000000001;Max retries reached; final state FinishedFail` +
    '\r\n',
);
const ABORTED = event(
  String.raw`/scheduler-reload-aborted/;sense-sched-1;Nightly finance reload;Finance dashboard;CORP\\anna;9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f;2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f;2026-11-20 02:01:40,002;INFO;7be1c2d3-5555-4aaa-8bbb-000000000001;Execution State Change to Aborting`,
);

describe('P1 status, P5/P7 basic task payloads', () => {
  it('P1 names broker and client id', () => {
    assert.equal(
      connectedStatusPayload('mqtt.corp.example', 8883, 'butler-mqtt-7f3a'),
      'Connected to MQTT broker mqtt.corp.example:8883 with client ID butler-mqtt-7f3a',
    );
  });

  it('P5/P7 are the sanitised task name and nothing else', () => {
    assert.equal(taskBasicPayload(FAILED), 'Nightly finance reload');
    assert.equal(taskBasicPayload(ABORTED), 'Nightly finance reload');
    const withControl = event(
      '/scheduler-task-failed/;h;Nightly\tfinance\u0000 reload;a;u;;;2026;ERROR;;m',
    );
    assert.equal(taskBasicPayload(withControl), 'Nightlyfinance reload');
  });
});

describe('P6 task failure full payload', () => {
  it('matches Butler byte for byte with the QRS task/full and app/full objects', () => {
    assert.equal(
      taskFailureFullPayload(FAILED, { taskFull, appFull }),
      String.raw`{"hostName":"sense-sched-1","user":"CORP\\anna","taskName":"Nightly finance reload","taskId":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","appName":"Finance dashboard","appId":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","logTimeStamp":"2026-11-20 02:03:12,345","logLevel":"ERROR","executionId":"7be1c2d3-5555-4aaa-8bbb-000000000001","logMessage":"Max retries reached; final state FinishedFail","qs_appTags":["Finance"],"qs_appCustomProperties":[{"name":"ServiceLevel","value":"Gold"}],"qs_taskTags":["Nightly","Finance"],"qs_taskCustomProperties":[{"name":"CostCenter","value":"Finance"}],"qs_taskMetadata":{"id":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","createdDate":"2025-03-04T08:15:00.000Z","modifiedDate":"2026-10-01T12:00:00.000Z","modifiedByUserName":"CORP\\anna","customProperties":[{"id":"c1d2e3f4-1111-4aaa-8bbb-000000000001","createdDate":"2025-03-04T08:16:00.000Z","modifiedDate":"2025-03-04T08:16:00.000Z","modifiedByUserName":"CORP\\anna","value":"Finance","definition":{"id":"d1e2f3a4-2222-4aaa-8bbb-000000000001","name":"CostCenter","valueType":"Text","choiceValues":["Finance","Sales"],"privileges":null},"schemaPath":"CustomPropertyValue"}],"app":{"id":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","name":"Finance dashboard","appId":"","publishTime":"2025-03-04T08:20:00.000Z","published":true,"stream":{"id":"5a6b7c8d-3333-4aaa-8bbb-000000000001","name":"Finance","privileges":null},"savedInProductVersion":"14.187.4","migrationHash":"a5f1c3e2b7d94e0f8c6a2b1d3e4f5a6b7c8d9e0f","availabilityStatus":0,"privileges":null},"isManuallyTriggered":false,"operational":{"id":"0d2a3b4c-4444-4aaa-8bbb-000000000001","lastExecutionResult":{"id":"7be1c2d3-5555-4aaa-8bbb-000000000001","executingNodeName":"sense-sched-1","status":8,"startTime":"2026-11-20T02:00:01.000Z","stopTime":"2026-11-20T02:03:12.000Z","duration":191000,"fileReferenceID":"00000000-0000-0000-0000-000000000000","scriptLogAvailable":false,"details":[],"scriptLogLocation":"","scriptLogSize":0,"privileges":null},"nextExecution":"2026-11-21T02:00:00.000Z","privileges":null},"name":"Nightly finance reload","taskType":0,"enabled":true,"taskSessionTimeout":1440,"maxRetries":0,"tags":[{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000001","name":"Nightly","privileges":null},{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000002","name":"Finance","privileges":null}],"privileges":null,"schemaPath":"ReloadTask"}}`,
    );
  });

  it('gives the same bytes for the frozen objects the QRS client shares, every time, per object', () => {
    const plain = taskFailureFullPayload(FAILED, { taskFull, appFull });
    const plainAborted = taskAbortedFullPayload(ABORTED, { taskFull, appFull });
    const frozenTask = deepFrozenCopy(taskFull);
    const frozenApp = deepFrozenCopy(appFull);
    for (let i = 0; i < 2; i++) {
      assert.equal(taskFailureFullPayload(FAILED, { taskFull: frozenTask, appFull: frozenApp }), plain);
      assert.equal(taskAbortedFullPayload(ABORTED, { taskFull: frozenTask, appFull: frozenApp }), plainAborted);
    }
    // Another frozen task object is not answered with the first one's text.
    const other = deepFrozenCopy({ ...taskFull, name: 'Another task' });
    assert.match(taskFailureFullPayload(FAILED, { taskFull: other, appFull: frozenApp }), /"qs_taskMetadata":\{[^]*"name":"Another task"/);
    assert.equal(taskFailureFullPayload(FAILED, { taskFull: frozenTask, appFull: frozenApp }, 'x'), taskFailureFullPayload(FAILED, { taskFull, appFull }, 'x'));
  });

  it('appends enrichmentError last and uses [] and {} for what QRS could not give', () => {
    assert.equal(
      taskFailureFullPayload(FAILED, {}, 'QRS unreachable: connect ECONNREFUSED 10.0.0.5:4242'),
      String.raw`{"hostName":"sense-sched-1","user":"CORP\\anna","taskName":"Nightly finance reload","taskId":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","appName":"Finance dashboard","appId":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","logTimeStamp":"2026-11-20 02:03:12,345","logLevel":"ERROR","executionId":"7be1c2d3-5555-4aaa-8bbb-000000000001","logMessage":"Max retries reached; final state FinishedFail","qs_appTags":[],"qs_appCustomProperties":[],"qs_taskTags":[],"qs_taskCustomProperties":[],"qs_taskMetadata":{},"enrichmentError":"QRS unreachable: connect ECONNREFUSED 10.0.0.5:4242"}`,
    );
  });

  it('keeps what is known when only the app lookup failed', () => {
    const smallTask = { id: '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f', name: 'Nightly finance reload', taskType: 0, tags: [{ id: 't1', name: 'Nightly' }], customProperties: [] };
    assert.equal(
      taskFailureFullPayload(FAILED, { taskFull: smallTask }, 'app/full timed out after 3 attempts'),
      String.raw`{"hostName":"sense-sched-1","user":"CORP\\anna","taskName":"Nightly finance reload","taskId":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","appName":"Finance dashboard","appId":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","logTimeStamp":"2026-11-20 02:03:12,345","logLevel":"ERROR","executionId":"7be1c2d3-5555-4aaa-8bbb-000000000001","logMessage":"Max retries reached; final state FinishedFail","qs_appTags":[],"qs_appCustomProperties":[],"qs_taskTags":["Nightly"],"qs_taskCustomProperties":[],"qs_taskMetadata":{"id":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","name":"Nightly finance reload","taskType":0,"tags":[{"id":"t1","name":"Nightly"}],"customProperties":[]},"enrichmentError":"app/full timed out after 3 attempts"}`,
    );
  });

  it('cuts a 600-character log message to 500 characters in the payload', () => {
    const long = event(
      `/scheduler-reload-failed/;h;t;a;u;;;2026-11-20;ERROR;e1;${'0123456789'.repeat(60)}`,
    );
    assert.equal(
      taskFailureFullPayload(long, { taskFull: {}, appFull: {} }),
      `{"hostName":"h","user":"u","taskName":"t","taskId":"","appName":"a","appId":"","logTimeStamp":"2026-11-20","logLevel":"ERROR","executionId":"e1","logMessage":"${'0123456789'.repeat(50)}","qs_appTags":[],"qs_appCustomProperties":[],"qs_taskTags":[],"qs_taskCustomProperties":[],"qs_taskMetadata":{}}`,
    );
  });

  it('collapses each double backslash of the user field, and only in that field', () => {
    const e = event(String.raw`/scheduler-reload-failed/;h\\x;t;a;A\B\\C\\\D\\\\E;;;2026;ERROR;;m\\n`);
    assert.equal(
      taskFailureFullPayload(e, {}),
      String.raw`{"hostName":"h\\\\x","user":"A\\B\\C\\\\D\\\\E","taskName":"t","taskId":"","appName":"a","appId":"","logTimeStamp":"2026","logLevel":"ERROR","executionId":"","logMessage":"m\\\\n","qs_appTags":[],"qs_appCustomProperties":[],"qs_taskTags":[],"qs_taskCustomProperties":[],"qs_taskMetadata":{}}`,
    );
    assert.equal(collapseDoubleBackslashes('\\'.repeat(5)), '\\'.repeat(3));
  });

  it('writes a tag without a name as null and drops a custom property member that is missing', () => {
    const odd = {
      tags: [{ id: 't1' }, { id: 't2', name: 'Kept' }, null],
      customProperties: [{ value: 'NoDefinition' }, { definition: { name: 'NoValue' } }, { definition: { name: 'N' }, value: 3 }],
    };
    const e = event('/scheduler-reload-failed/;h;t;a;u;;;d;l;x;m');
    assert.equal(
      taskFailureFullPayload(e, { taskFull: odd }),
      '{"hostName":"h","user":"u","taskName":"t","taskId":"","appName":"a","appId":"","logTimeStamp":"d","logLevel":"l","executionId":"x","logMessage":"m","qs_appTags":[],"qs_appCustomProperties":[],"qs_taskTags":[null,"Kept",null],"qs_taskCustomProperties":[{"value":"NoDefinition"},{"name":"NoValue"},{"name":"N","value":3}],"qs_taskMetadata":{"tags":[{"id":"t1"},{"id":"t2","name":"Kept"},null],"customProperties":[{"value":"NoDefinition"},{"definition":{"name":"NoValue"}},{"definition":{"name":"N"},"value":3}]}}',
    );
  });
});

describe('P8 task aborted full payload', () => {
  it('matches Butler byte for byte, with qs_appMetadata just before qs_taskMetadata', () => {
    assert.equal(
      taskAbortedFullPayload(ABORTED, { taskFull, appFull }),
      String.raw`{"hostName":"sense-sched-1","user":"CORP\\anna","taskName":"Nightly finance reload","taskId":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","appName":"Finance dashboard","appId":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","logTimeStamp":"2026-11-20 02:01:40,002","logLevel":"INFO","executionId":"7be1c2d3-5555-4aaa-8bbb-000000000001","logMessage":"Execution State Change to Aborting","qs_appTags":["Finance"],"qs_appCustomProperties":[{"name":"ServiceLevel","value":"Gold"}],"qs_taskTags":["Nightly","Finance"],"qs_taskCustomProperties":[{"name":"CostCenter","value":"Finance"}],"qs_appMetadata":{"id":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","createdDate":"2025-03-04T08:10:00.000Z","modifiedDate":"2026-11-19T02:03:10.000Z","modifiedByUserName":"INTERNAL\\sa_scheduler","customProperties":[{"id":"c1d2e3f4-1111-4aaa-8bbb-000000000002","value":"Gold","definition":{"id":"d1e2f3a4-2222-4aaa-8bbb-000000000002","name":"ServiceLevel","valueType":"Text","privileges":null},"schemaPath":"CustomPropertyValue"}],"owner":{"id":"0a1b2c3d-7777-4aaa-8bbb-000000000001","userId":"anna","userDirectory":"CORP","name":"Anna Berg","privileges":null},"name":"Finance dashboard","appId":"","sourceAppId":"00000000-0000-0000-0000-000000000000","targetAppId":"00000000-0000-0000-0000-000000000000","publishTime":"2025-03-04T08:20:00.000Z","published":true,"tags":[{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000002","name":"Finance","privileges":null}],"description":"Försäljning & budget – \"Q4\" <draft>","version":"1","lastReloadTime":"2026-11-19T02:03:10.000Z","thumbnail":"","savedInProductVersion":"14.187.4","migrationHash":"a5f1c3e2b7d94e0f8c6a2b1d3e4f5a6b7c8d9e0f","dynamicColor":"","availabilityStatus":0,"stream":{"id":"5a6b7c8d-3333-4aaa-8bbb-000000000001","name":"Finance","privileges":null},"fileSize":1048576,"privileges":null,"schemaPath":"App"},"qs_taskMetadata":{"id":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","createdDate":"2025-03-04T08:15:00.000Z","modifiedDate":"2026-10-01T12:00:00.000Z","modifiedByUserName":"CORP\\anna","customProperties":[{"id":"c1d2e3f4-1111-4aaa-8bbb-000000000001","createdDate":"2025-03-04T08:16:00.000Z","modifiedDate":"2025-03-04T08:16:00.000Z","modifiedByUserName":"CORP\\anna","value":"Finance","definition":{"id":"d1e2f3a4-2222-4aaa-8bbb-000000000001","name":"CostCenter","valueType":"Text","choiceValues":["Finance","Sales"],"privileges":null},"schemaPath":"CustomPropertyValue"}],"app":{"id":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","name":"Finance dashboard","appId":"","publishTime":"2025-03-04T08:20:00.000Z","published":true,"stream":{"id":"5a6b7c8d-3333-4aaa-8bbb-000000000001","name":"Finance","privileges":null},"savedInProductVersion":"14.187.4","migrationHash":"a5f1c3e2b7d94e0f8c6a2b1d3e4f5a6b7c8d9e0f","availabilityStatus":0,"privileges":null},"isManuallyTriggered":false,"operational":{"id":"0d2a3b4c-4444-4aaa-8bbb-000000000001","lastExecutionResult":{"id":"7be1c2d3-5555-4aaa-8bbb-000000000001","executingNodeName":"sense-sched-1","status":8,"startTime":"2026-11-20T02:00:01.000Z","stopTime":"2026-11-20T02:03:12.000Z","duration":191000,"fileReferenceID":"00000000-0000-0000-0000-000000000000","scriptLogAvailable":false,"details":[],"scriptLogLocation":"","scriptLogSize":0,"privileges":null},"nextExecution":"2026-11-21T02:00:00.000Z","privileges":null},"name":"Nightly finance reload","taskType":0,"enabled":true,"taskSessionTimeout":1440,"maxRetries":0,"tags":[{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000001","name":"Nightly","privileges":null},{"id":"e1f2a3b4-6666-4aaa-8bbb-000000000002","name":"Finance","privileges":null}],"privileges":null,"schemaPath":"ReloadTask"}}`,
    );
  });

  it('appends enrichmentError last, after both empty metadata objects', () => {
    assert.equal(
      taskAbortedFullPayload(ABORTED, {}, 'QRS answered 503'),
      String.raw`{"hostName":"sense-sched-1","user":"CORP\\anna","taskName":"Nightly finance reload","taskId":"9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","appName":"Finance dashboard","appId":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f","logTimeStamp":"2026-11-20 02:01:40,002","logLevel":"INFO","executionId":"7be1c2d3-5555-4aaa-8bbb-000000000001","logMessage":"Execution State Change to Aborting","qs_appTags":[],"qs_appCustomProperties":[],"qs_taskTags":[],"qs_taskCustomProperties":[],"qs_appMetadata":{},"qs_taskMetadata":{},"enrichmentError":"QRS answered 503"}`,
    );
  });
});

describe('P9–P11 service payloads', () => {
  const engine: ServiceState = {
    host: 'sense1',
    serviceName: 'QlikSenseEngineService',
    friendlyName: 'Engine',
    displayName: 'Qlik Sense Engine Service',
    dependencies: ['QlikSenseRepositoryService', 'QlikSenseServiceDispatcher'],
    startType: 'Automatic',
    exePath: '"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe" -service',
    status: 'STOPPED',
  };

  it('P9 puts serviceFriendlyName before serviceDisplayName and upper-cases the previous state', () => {
    assert.equal(
      serviceStoppedPayload(engine, 'running'),
      String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceFriendlyName":"Engine","serviceDisplayName":"Qlik Sense Engine Service","serviceDependencies":["QlikSenseRepositoryService","QlikSenseServiceDispatcher"],"serviceStartType":"Automatic","serviceExePath":"\"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe\" -service","serviceStatus":"STOPPED","servicePrevStatus":"RUNNING","serviceStatusChanged":true}`,
    );
  });

  it('P10 puts serviceDisplayName before serviceFriendlyName', () => {
    assert.equal(
      serviceRunningPayload({ ...engine, status: 'RUNNING', dependencies: [] }, 'Stopped'),
      String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceDisplayName":"Qlik Sense Engine Service","serviceFriendlyName":"Engine","serviceDependencies":[],"serviceStartType":"Automatic","serviceExePath":"\"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe\" -service","serviceStatus":"RUNNING","servicePrevStatus":"STOPPED","serviceStatusChanged":true}`,
    );
  });

  it('P11 is P10 without the previous state and the change flag', () => {
    assert.equal(
      serviceStatusPayload({ ...engine, status: 'RUNNING' }),
      String.raw`{"serviceHost":"sense1","serviceName":"QlikSenseEngineService","serviceDisplayName":"Qlik Sense Engine Service","serviceFriendlyName":"Engine","serviceDependencies":["QlikSenseRepositoryService","QlikSenseServiceDispatcher"],"serviceStartType":"Automatic","serviceExePath":"\"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe\" -service","serviceStatus":"RUNNING"}`,
    );
  });
});

describe('P12/P13 license payloads', () => {
  it('P12 is the compact three-key object', () => {
    assert.equal(
      licenseStatusPayload({ licenseExpired: false, expiryDateStr: '2026-12-10', daysUntilExpiry: 17 }),
      '{"licenseExpired":false,"expiryDateStr":"2026-12-10","daysUntilExpiry":17}',
    );
    assert.equal(
      licenseStatusPayload({ licenseExpired: true, expiryDateStr: '2026-11-01', daysUntilExpiry: -19 }),
      '{"licenseExpired":true,"expiryDateStr":"2026-11-01","daysUntilExpiry":-19}',
    );
  });

  it('P13 texts', () => {
    assert.equal(licenseExpiredPayload('2026-11-01'), 'Qlik Sense server license expired on 2026-11-01');
    assert.equal(licenseExpiringPayload(17, '2026-12-10'), 'Qlik Sense server license is about to expire in 17 days, on 2026-12-10');
  });
});

describe('session and connection payloads', () => {
  const start = userEvent(
    `/qseow-proxy-session/;sense-proxy-1;Start session;CORP;anna;https://sense.corp.example;/app/2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f/sheet/a1;Start session for user "CORP\\anna"; UserAgent: x`,
  );

  it('legacy payload is "<host>: <userDir>/<userId>"', () => {
    assert.equal(sessionLegacyPayload(start), 'sense-proxy-1: CORP/anna');
    assert.equal(sessionLegacyPayload(userEvent('sense-proxy-2;Close connection;INTERNAL;sa_repository')), 'sense-proxy-2: INTERNAL/sa_repository');
  });

  it('JSON event has the documented key order and appends appId when the context names an app', () => {
    assert.equal(
      userEventJsonPayload(start),
      String.raw`{"messageType":"qseow-proxy-session","host":"sense-proxy-1","command":"Start session","user_directory":"CORP","user_id":"anna","origin":"https://sense.corp.example","context":"/app/2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f/sheet/a1","message":"Start session for user \"CORP\\anna\"; UserAgent: x","user_full":"CORP\\anna","appId":"2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f"}`,
    );
  });

  it('JSON event without an app leaves appId out; the legacy form has empty origin/context/message', () => {
    assert.equal(
      userEventJsonPayload(userEvent('sense-proxy-2;Open connection;INTERNAL;sa_repository')),
      String.raw`{"messageType":"qseow-proxy-connection","host":"sense-proxy-2","command":"Open connection","user_directory":"INTERNAL","user_id":"sa_repository","origin":"","context":"","message":"","user_full":"INTERNAL\\sa_repository"}`,
    );
  });
});

function deepFrozenCopy<T>(value: T): T {
  const copy = structuredClone(value);
  const freeze = (v: unknown) => {
    if (v !== null && typeof v === 'object') {
      Object.freeze(v);
      Object.values(v).forEach(freeze);
    }
  };
  freeze(copy);
  return copy;
}
