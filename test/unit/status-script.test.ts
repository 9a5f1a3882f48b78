// The status page's browser script is plain JavaScript with JSDoc types (`// @ts-check`); this keeps
// it type-correct against the DOM library under strict checking, as the TypeScript sources are.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from '../support/bridge.ts';

test('src/http/status/status.js type-checks (strict, DOM)', () => {
  const file = path.join(REPO_ROOT, 'src/http/status/status.js');
  const program = ts.createProgram([file], {
    allowJs: true,
    checkJs: true,
    strict: true,
    noEmit: true,
    lib: ['lib.dom.d.ts', 'lib.es2022.d.ts'],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ES2022,
    types: [],
  });
  const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  assert.deepEqual(problems, []);
});
