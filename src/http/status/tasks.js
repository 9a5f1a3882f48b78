// The task-health view: reads /status/tasks/api every 10 s, draws outcomes per hour with uPlot and
// lists every task seen. Plain script, no build step; text goes in through textContent only.
'use strict';
(function () {
  const FAILURES = new Set(['FinishedFail', 'Aborted', 'Error']);
  let plot = null;

  function kind(status) {
    if (status === 'FinishedSuccess') return 'success';
    return FAILURES.has(status) ? 'failure' : 'other';
  }

  function cell(row, text, cls) {
    const td = document.createElement('td');
    if (cls) td.className = cls;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function when(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  function renderTable(tasks) {
    const body = document.getElementById('task-rows');
    body.textContent = '';
    document.getElementById('task-count').textContent = tasks.length ? '(' + tasks.length + ')' : '';
    if (tasks.length === 0) {
      const row = document.createElement('tr');
      const td = cell(row, 'No task outcome seen yet.', 'muted');
      td.colSpan = 7;
      body.appendChild(row);
      return;
    }
    for (const t of tasks) {
      const row = document.createElement('tr');
      row.dataset.taskId = t.taskId;
      cell(row, t.taskName || t.taskId);
      cell(row, t.taskType || '—');
      const td = document.createElement('td');
      const badge = document.createElement('span');
      badge.className = 'outcome';
      badge.dataset.kind = kind(t.status);
      badge.textContent = t.status;
      td.appendChild(badge);
      row.appendChild(td);
      cell(row, when(t.stopTime));
      cell(row, String(t.failuresLast24h), 'num failures-24h');
      cell(row, String(t.consecutiveFailures), 'num');
      cell(row, when(t.lastSuccessTime));
      body.appendChild(row);
    }
  }

  function renderChart(hours) {
    const x = hours.map((h) => Date.parse(h.hour) / 1000);
    const data = [x, hours.map((h) => h.success), hours.map((h) => h.failure), hours.map((h) => h.other)];
    const el = document.getElementById('chart');
    if (plot) {
      plot.setData(data);
      return;
    }
    // Side by side within each hour: success left, other centre, failure right.
    const bars = (align) => uPlot.paths.bars({ size: [0.3, 14], align: align });
    plot = new uPlot(
      {
        width: Math.max(320, el.clientWidth || 800),
        height: 240,
        scales: { x: { time: true, range: (_u, min, max) => [min - 1800, max + 1800] }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
        series: [
          {},
          { label: 'success', stroke: '#1f9d55', fill: 'rgba(31,157,85,0.35)', paths: bars(-1) },
          { label: 'failure', stroke: '#d64545', fill: 'rgba(214,69,69,0.45)', paths: bars(1) },
          { label: 'other', stroke: '#8a94a6', fill: 'rgba(138,148,166,0.35)', paths: bars(0) },
        ],
      },
      data,
      el,
    );
    window.addEventListener('resize', () => plot.setSize({ width: Math.max(320, el.clientWidth), height: 240 }));
  }

  function renderSource(source) {
    const line = document.getElementById('source-line');
    if (!source) return;
    const parts = [];
    if (!source.callbackUrl) parts.push('no subscription (catch-up reads only)');
    else if (source.subscribed) parts.push('subscribed, callbacks to ' + source.callbackUrl);
    else parts.push('NOT subscribed: ' + (source.registrationError || 'registering') + ' (attempt ' + source.registrationAttempts + ')');
    parts.push('last catch-up: ' + (source.lastCatchUpAt ? new Date(source.lastCatchUpAt).toLocaleString() : 'not yet'));
    if (source.lastCatchUpError) parts.push('catch-up failing: ' + source.lastCatchUpError);
    parts.push('position: ' + (source.cursor || '—'));
    line.textContent = parts.join(' · ');
    line.dataset.state = source.callbackUrl && !source.subscribed ? 'bad' : 'ok';
  }

  async function refresh() {
    try {
      const res = await fetch('/status/tasks/api', { cache: 'no-store' });
      if (!res.ok) return;
      const health = await res.json();
      renderSource(health.source);
      renderTable(health.tasks);
      renderChart(health.hours);
      document.body.dataset.loaded = 'true';
    } catch (err) {
      // the next refresh tries again
    }
  }

  refresh();
  setInterval(refresh, 10000);
})();
