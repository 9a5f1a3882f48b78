// The layer rules of the code (docs/architecture.md), checked by `npm test` (scripts/run-tests.mjs).
// Arrows point down: the composition root knows the features, features know the parts they wire,
// handlers know clients and payload builders, and nothing below knows what is above it.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'An import cycle makes the layers meaningless: every module in it depends on every other.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'only-the-root-knows-features',
      severity: 'error',
      comment: 'Features are built by the composition root (src/app.ts) only; no feature knows another.',
      from: { path: '^src/', pathNot: '^src/(app\\.ts|features/)' },
      to: { path: '^src/features/' },
    },
    {
      name: 'features-are-not-wired-to-each-other',
      severity: 'error',
      comment: 'A feature gets what it needs through its FeatureContext, not from another feature.',
      from: { path: '^src/features/([^/]+)$' },
      to: { path: '^src/features/', pathNot: '^src/features/($1|feature\\.ts)$' },
    },
    {
      name: 'nothing-imports-the-root',
      severity: 'error',
      comment: 'Only the command line runs the composition root.',
      from: { path: '^src/', pathNot: '^src/(cli/|main\\.ts)' },
      to: { path: '^src/app\\.ts$' },
    },
    {
      name: 'handlers-do-not-know-http',
      severity: 'error',
      comment: 'Handlers and payload builders (src/alerts) turn events into messages; HTTP is a source, not a dependency.',
      from: { path: '^src/alerts/' },
      to: { path: '^src/(http|features)/' },
    },
    {
      name: 'sources-and-clients-do-not-know-handlers',
      severity: 'error',
      comment: 'Sources only turn sockets, subscriptions and timers into pipeline input; clients only talk to their service.',
      from: { path: '^src/(sense|cloud|mqtt|net|pipeline)/' },
      to: { path: '^src/(alerts|features|http)/' },
    },
    {
      name: 'the-pipeline-knows-no-source',
      severity: 'error',
      comment: 'The pipeline is the same for every source.',
      from: { path: '^src/pipeline/' },
      to: { path: '^src/(sense|cloud|mqtt|net)/' },
    },
    {
      name: 'the-store-knows-no-feature-and-no-broker',
      severity: 'error',
      from: { path: '^src/store/' },
      to: { path: '^src/(?!store/|observability/)' },
    },
    {
      name: 'config-knows-nothing-of-its-users',
      severity: 'error',
      comment: 'The config checks use only the pure syntax rules of MQTT topics and schedules (no I/O, no state).',
      from: { path: '^src/config/' },
      to: { path: '^src/(?!config/)', pathNot: '^src/(mqtt/topics|alerts/schedule)\\.ts$' },
    },
    {
      name: 'observability-is-a-leaf',
      severity: 'error',
      from: { path: '^src/observability/' },
      to: { path: '^src/(?!observability/)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
