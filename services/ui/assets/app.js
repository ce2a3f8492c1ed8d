// vmledger ui: the page's script. Plain browser JavaScript (no bundler, no framework, nothing fetched from
// elsewhere): it loads the diagram, the rule catalog and a domain's history from the server's /api endpoints.
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an element: h('td', { class: 'x' }, 'text', child…). Text is always set as text, never as HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Rule text from the catalog: `code` spans and **bold**, everything else as text. */
function ruleText(text) {
  const out = [];
  const re = /`([^`]+)`|\*\*([^*]+)\*\*/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(m[1] !== undefined ? h('code', {}, m[1]) : h('strong', {}, m[2]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

async function getJson(url, init) {
  const res = await fetch(url, init);
  const body = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

const cssEscape = (s) => (window.CSS && CSS.escape ? CSS.escape(s) : String(s).replace(/["\\]/g, '\\$&'));

// ---------------------------------------------------------------------------------------------------
// A zoomable diagram in a scrolling box.

class Diagram {
  constructor(container) {
    this.container = container;
    this.canvas = null;
    this.svg = null;
    this.zoom = 1;
    this.width = 0;
    this.height = 0;
    this.padX = 0;
    this.padY = 0;
  }

  load(svgText) {
    // The SVG sits on a canvas with room around it, so that a state at the diagram's edge can still be centred.
    this.canvas = document.createElement('div');
    this.canvas.className = 'diagram-canvas';
    this.canvas.innerHTML = svgText;
    this.container.replaceChildren(this.canvas);
    this.svg = this.canvas.querySelector('svg');
    const box = this.svg.viewBox.baseVal;
    this.width = box && box.width ? box.width : this.svg.getBBox().width;
    this.height = box && box.height ? box.height : this.svg.getBBox().height;
    this.svg.removeAttribute('width');
    this.svg.removeAttribute('height');
    this.setZoom(this.zoom);
  }

  setZoom(zoom) {
    this.zoom = Math.min(3, Math.max(0.1, zoom));
    if (!this.svg) return;
    // viewBox units are points; 1pt = 4/3 px at 100%.
    this.svg.style.width = `${(this.width * 4 / 3) * this.zoom}px`;
    this.svg.style.height = `${(this.height * 4 / 3) * this.zoom}px`;
    this.padX = Math.max(0, Math.round(this.container.clientWidth / 2 - 60));
    this.padY = Math.max(0, Math.round(this.container.clientHeight / 2 - 60));
    this.canvas.style.padding = `${this.padY}px ${this.padX}px`;
  }

  fit() {
    const w = this.container.clientWidth - 8;
    const hgt = this.container.clientHeight - 8;
    // A small view (a focus) is not blown up past 125%.
    this.setZoom(Math.min(1.25, w / (this.width * 4 / 3), hgt / (this.height * 4 / 3)));
    this.container.scrollLeft = this.padX;
    this.container.scrollTop = this.padY;
  }

  zoomBy(factor) {
    // Keep the point in the centre of the view where it is.
    const c = this.container;
    const cx = (c.scrollLeft + c.clientWidth / 2 - this.padX) / this.zoom;
    const cy = (c.scrollTop + c.clientHeight / 2 - this.padY) / this.zoom;
    this.setZoom(this.zoom * factor);
    c.scrollLeft = cx * this.zoom + this.padX - c.clientWidth / 2;
    c.scrollTop = cy * this.zoom + this.padY - c.clientHeight / 2;
  }

  /** Scrolls so that the element is in the middle of the view. */
  centreOn(el) {
    if (!el) return;
    const c = this.container.getBoundingClientRect();
    const r = el.getBoundingClientRect();
    this.container.scrollLeft += r.left + r.width / 2 - (c.left + c.width / 2);
    this.container.scrollTop += r.top + r.height / 2 - (c.top + c.height / 2);
  }

  state(path) {
    return this.svg && this.svg.querySelector(`[data-state="${cssEscape(path)}"]`);
  }

  /** The drawn edge carrying a machine edge (a view edge carries several), or the box that lists it. */
  edge(id) {
    return this.svg && this.svg.querySelector(`.edge[data-edges~="${cssEscape(id)}"]`);
  }

  box(id) {
    return this.svg && this.svg.querySelector(`[data-stays~="${cssEscape(id)}"]`);
  }

  clear(...classes) {
    if (!this.svg) return;
    for (const cls of classes) for (const el of this.svg.querySelectorAll(`.${cls}`)) el.classList.remove(cls);
  }

  /** A label drawn above a state node (SVG text with a box), so the highlight does not rely on colour alone. */
  badge(node, text, cls) {
    this.svg.querySelectorAll('.step-badge').forEach((b) => b.remove());
    if (!node || !text) return;
    this.label(node, text, `step-badge ${cls || ''}`);
  }

  /** A label on an edge, next to its own label: what a refused command would have taken, and the rule. */
  edgeBadge(edge, text, cls) {
    this.svg.querySelectorAll('.edge-badge').forEach((b) => b.remove());
    if (!edge || !text) return;
    this.label(edge.querySelector('text') || edge, text, `edge-badge ${cls || ''}`);
  }

  label(node, text, cls) {
    const box = node.getBBox();
    const g = document.createElementNS(SVG_NS, 'g');
    g.setAttribute('class', cls);
    g.setAttribute('aria-hidden', 'true');
    const rect = document.createElementNS(SVG_NS, 'rect');
    rect.setAttribute('class', 'badge-box');
    rect.setAttribute('rx', '4');
    const label = document.createElementNS(SVG_NS, 'text');
    label.textContent = text;
    g.append(rect, label);
    (node.closest('svg > g') || node.parentNode).append(g);
    const t = label.getBBox();
    const x = box.x + box.width / 2 - t.width / 2;
    const y = box.y - 10;
    label.setAttribute('x', String(x));
    label.setAttribute('y', String(y));
    const tb = label.getBBox();
    rect.setAttribute('x', String(tb.x - 5));
    rect.setAttribute('y', String(tb.y - 3));
    rect.setAttribute('width', String(tb.width + 10));
    rect.setAttribute('height', String(tb.height + 6));
  }
}

const diagrams = {};

// ---------------------------------------------------------------------------------------------------
// History stepper

const state = { history: null, step: 0, domains: [], searching: null };

const el = {
  picker: () => document.getElementById('domain-picker'),
  prev: () => document.getElementById('prev'),
  next: () => document.getElementById('next'),
  count: () => document.getElementById('step-count'),
  detail: () => document.getElementById('step-detail'),
  steps: () => document.getElementById('steps'),
};

function stateName(p) {
  return p.leaf;
}

function domainKey(d) {
  return `${d.host}/${d.name}`;
}

/** `host/name` → { host, name } (a host name holds no slash). */
function parseDomainKey(key) {
  const slash = key.indexOf('/');
  return slash < 0 ? null : { host: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** The picker shows the first page of the domains the search finds; the server searches (never every domain here). */
async function loadDomains() {
  const picker = el.picker();
  const params = new URLSearchParams();
  const text = document.getElementById('domain-search').value.trim();
  const host = document.getElementById('domain-host').value;
  const st = document.getElementById('domain-state').value;
  if (text) params.set('q', text);
  if (host) params.set('host', host);
  if (st) params.set('state', st);
  const asked = params.toString();
  state.searching = asked;
  const { domains, total, hosts } = await getJson(`/api/domains${asked ? `?${asked}` : ''}`);
  if (state.searching !== asked) return; // a later search is on its way
  state.domains = domains;
  const hostPicker = document.getElementById('domain-host');
  if (hostPicker.options.length !== hosts.length + 1) {
    hostPicker.replaceChildren(h('option', { value: '' }, 'any host'), ...hosts.map((x) => h('option', { value: x }, x)));
    hostPicker.value = hosts.includes(host) ? host : '';
  }
  picker.replaceChildren();
  const count = document.getElementById('domain-count');
  count.textContent = total > domains.length ? `the first ${domains.length} of ${total.toLocaleString('en-US')} domains found: refine the search` : '';
  if (domains.length === 0) {
    picker.append(h('option', { value: '' }, asked ? 'No domain matches the search' : 'No domains recorded yet'));
    picker.disabled = true;
    return;
  }
  picker.append(h('option', { value: '' }, 'Choose a domain…'));
  for (const d of domains) {
    const where = d.runState ? `${d.state}, ${d.runState}` : d.state;
    picker.append(h('option', { value: domainKey(d) }, `${d.name} on ${d.host} — ${where}`));
  }
  picker.disabled = false;
  if (state.history) {
    const shown = `${state.history.host}/${state.history.domain}`;
    if (domains.some((d) => domainKey(d) === shown)) picker.value = shown;
  }
}

/** Searching as the user types, at most one request per pause. */
function wireDomainSearch() {
  let timer;
  const again = () => {
    clearTimeout(timer);
    timer = setTimeout(() => loadDomains().catch(showDomainsError), 150);
  };
  document.getElementById('domain-search').addEventListener('input', again);
  document.getElementById('domain-host').addEventListener('change', again);
  document.getElementById('domain-state').addEventListener('change', again);
}

function showDomainsError(error) {
  document.getElementById('domain-count').textContent = `Could not search the domains: ${error.message}`;
}

async function loadHistory(key) {
  const d = parseDomainKey(key);
  if (!d) return;
  el.detail().replaceChildren(h('p', { class: 'muted' }, `Loading the history of ${d.name}…`));
  try {
    state.history = await getJson(`/api/history?host=${encodeURIComponent(d.host)}&domain=${encodeURIComponent(d.name)}`);
  } catch (error) {
    state.history = null;
    el.detail().replaceChildren(h('p', { class: 'status error' }, `Could not load the history: ${error.message}`));
    return;
  }
  history.replaceState(null, '', `#domain=${encodeURIComponent(key)}`);
  renderStepList();
  showStep(0);
}

function renderStepList() {
  const list = el.steps();
  list.replaceChildren();
  for (const s of state.history.steps) {
    const to =
      s.outcome === 'refused' ? `✗ ${s.rule || 'refused'}` : s.kind === 'initial' ? stateName(s.after) : `→ ${stateName(s.after)}`;
    list.append(
      h(
        'li',
        {},
        h(
          'button',
          {
            type: 'button',
            class: `step ${s.outcome || 'initial'}${s.kind === 'libvirt' ? ' libvirt' : ''}`,
            'data-kind': s.kind,
            'data-step': s.index,
            'data-state': s.after.leaf,
            onclick: () => showStep(s.index),
          },
          h('span', { class: 'n' }, `${s.index}.`),
          // What libvirt did on its own is marked apart from the commands, with where vmledger heard it.
          s.kind === 'libvirt' ? h('span', { class: 'badge libvirt', 'data-testid': 'step-source' }, `libvirt · ${s.source.source}`) : null,
          h('span', { class: 'cmd', title: s.line }, s.kind === 'initial' ? '(before any command)' : s.line),
          h('span', { class: 'to' }, to),
        ),
      ),
    );
  }
}

function showStep(index) {
  const steps = state.history ? state.history.steps : [];
  if (steps.length === 0) return;
  state.step = Math.max(0, Math.min(steps.length - 1, index));
  const s = steps[state.step];
  const last = steps.length - 1;

  el.prev().disabled = state.step === 0;
  el.next().disabled = state.step === last;
  el.count().textContent = `Step ${state.step} of ${last}`;
  for (const b of el.steps().querySelectorAll('button')) {
    if (Number(b.dataset.step) === state.step) {
      b.setAttribute('aria-current', 'step');
      b.scrollIntoView({ block: 'nearest' });
    } else b.removeAttribute('aria-current');
  }
  renderDetail(s);
  highlight(s);
}

function renderDetail(s) {
  const detail = el.detail();
  const parts = [];
  if (s.kind === 'initial') {
    parts.push(h('p', {}, h('span', { class: 'badge initial' }, 'before'), ' ', `${state.history.domain} on ${state.history.host} before its first command`));
    parts.push(h('p', {}, 'State: ', h('strong', { class: 'mono', 'data-testid': 'step-state' }, s.after.leaf)));
  } else {
    if (s.kind === 'libvirt') {
      parts.push(
        h(
          'p',
          { class: 'source', 'data-testid': 'source' },
          h('span', { class: 'badge libvirt' }, 'from libvirt'),
          ` not a command sent to vmledger: libvirt did it on its own, heard by ${s.source.source}`,
          s.source.detail ? h('span', { class: 'mono' }, ` (${s.source.detail})`) : null,
        ),
      );
    }
    parts.push(h('p', { class: 'line' }, s.line));
    const outcome = h('span', { class: `badge ${s.outcome}` }, s.outcome);
    if (s.outcome === 'refused') {
      parts.push(h('p', {}, outcome, ' at ', h('strong', { class: 'mono', 'data-testid': 'step-state' }, s.after.leaf), ' (the state does not change)'));
      parts.push(
        h(
          'div',
          { class: 'refusal', 'data-testid': 'refusal' },
          h('p', {}, 'Rule ', h('span', { class: 'rule-id mono', 'data-testid': 'refusal-rule' }, s.rule || '?'), s.code !== undefined ? ` · ${s.code} ${s.codeName || ''}` : ''),
          s.message ? h('p', { class: 'mono' }, s.message) : null,
          s.ruleText ? h('p', { class: 'muted' }, ...ruleText(s.ruleText)) : null,
        ),
      );
    } else {
      const moved = s.before && s.before.leaf !== s.after.leaf;
      parts.push(
        h(
          'p',
          {},
          outcome,
          ' ',
          moved ? `${s.before.leaf} → ` : s.before ? 'stays in ' : '',
          h('strong', { class: 'mono', 'data-testid': 'step-state' }, s.after.leaf),
        ),
      );
      if (s.message) parts.push(h('p', { class: 'muted' }, s.rule ? `${s.rule}: ${s.message}` : s.message));
    }
    const dl = h('dl', {});
    const row = (k, v) => dl.append(h('dt', {}, k), h('dd', {}, v));
    if (s.facts.length > 0) row('Facts', s.facts.map((f) => f.type).join(', '));
    else if (s.outcome === 'accepted') row('Facts', 'none (a no-op)');
    if (s.edge) row('Edge', s.edge);
    row('Snapshots', `${s.after.snapshots}${s.after.currentSnapshot ? ` (current ${s.after.currentSnapshot})` : ''}`);
    row('Persistent', s.after.persistent ? 'yes' : 'no');
    if (s.after.managedSave) row('Managed save', 'yes');
    if (s.time) row('Time', s.time);
    if (s.actor) row('Actor', s.actor);
    if (s.position !== null) row('Position', String(s.position));
    parts.push(dl);
  }
  detail.replaceChildren(...parts);
}

function highlight(s) {
  const d = diagrams.diagram;
  if (!d || !d.svg) return;
  d.clear('current', 'current-parent', 'previous', 'refused', 'taken', 'refused-edge');
  d.svg.querySelectorAll('.edge-badge').forEach((b) => b.remove());
  d.svg.classList.add('focus');
  const node = d.state(s.after.leaf);
  if (node) node.classList.add('current');
  const top = s.after.leaf.split('.')[0];
  if (top !== s.after.leaf) {
    const cluster = d.state(top);
    if (cluster) cluster.classList.add('current-parent');
  }
  if (s.before && s.before.leaf !== s.after.leaf) {
    const prev = d.state(s.before.leaf);
    if (prev) prev.classList.add('previous');
  }
  if (s.edge) {
    // An edge that keeps the state is listed in the state's box in the overview: the box is marked then.
    const edge = d.edge(s.edge) || d.box(s.edge);
    if (edge) edge.classList.add('taken');
  }
  if (s.outcome === 'refused') {
    if (node) node.classList.add('refused');
    const would = [];
    for (const id of s.refusedEdges) {
      const edge = d.edge(id);
      if (edge) {
        edge.classList.add('refused-edge');
        if (!would.includes(edge)) would.push(edge);
      }
    }
    // The edge the command would have taken, with the rule that blocked it.
    if (would[0]) d.edgeBadge(would[0], `${s.verb} ✗ ${s.rule}`, 'refused');
    d.badge(node, `step ${s.index}: ${s.verb} ✗ refused by ${s.rule} (stays ${s.after.leaf})`, 'refused');
  } else if (s.kind === 'initial') {
    d.badge(node, `step 0: ${s.after.leaf} (before the first command)`, '');
  } else {
    d.badge(node, `step ${s.index}: ${s.verb} → ${s.after.leaf}`, '');
  }
  // The overview is legible as it fits; the full edge list is not, so it zooms in on the state.
  if (d.view === 'full' && d.zoom < 0.6) d.setZoom(0.85);
  // A diagram that fits stays where it is (centring would push part of it out of view).
  const r = d.svg.getBoundingClientRect();
  if (r.width > d.container.clientWidth || r.height > d.container.clientHeight) d.centreOn(node);
  else d.fit();
}

// ---------------------------------------------------------------------------------------------------
// Rules

function renderRules(rules) {
  const body = document.querySelector('#rule-table tbody');
  body.replaceChildren();
  const edgeCount = (id) => (diagrams.diagram && diagrams.diagram.svg ? diagrams.diagram.svg.querySelectorAll(`[data-rules~="${cssEscape(id)}"]`).length : 0);
  for (const r of rules) {
    const count = edgeCount(r.id);
    body.append(
      h(
        'tr',
        { 'data-rule': r.id, 'data-search': `${r.id} ${r.section} ${r.kind} ${r.text}`.toLowerCase() },
        h('td', {}, r.id),
        h('td', {}, r.section),
        h('td', {}, h('span', { class: `kind ${r.kind}` }, r.kind)),
        h('td', {}, ...ruleText(r.text)),
        h(
          'td',
          {},
          count > 0
            ? h('button', { type: 'button', onclick: () => showRule(r.id), 'aria-label': `Show the ${count} edges guarded by ${r.id}` }, `Show ${count}`)
            : h('span', { class: 'muted' }, 'none'),
        ),
      ),
    );
  }
  filterRules();
}

function filterRules() {
  const q = document.getElementById('rule-filter').value.trim().toLowerCase();
  let shown = 0;
  const rows = document.querySelectorAll('#rule-table tbody tr');
  for (const tr of rows) {
    const hit = q === '' || tr.dataset.search.includes(q);
    tr.hidden = !hit;
    if (hit) shown++;
  }
  document.getElementById('rule-count').textContent = `${shown} of ${rows.length} rules`;
}

function showRule(id) {
  const d = diagrams.diagram;
  d.clear('rule-hit');
  for (const tr of document.querySelectorAll('#rule-table tr.selected')) tr.classList.remove('selected');
  const row = document.querySelector(`#rule-table tr[data-rule="${cssEscape(id)}"]`);
  if (row) row.classList.add('selected');
  const hits = d.svg.querySelectorAll(`[data-rules~="${cssEscape(id)}"]`);
  hits.forEach((e) => e.classList.add('rule-hit'));
  d.svg.classList.add('focus');
  const status = document.getElementById('rule-status');
  status.replaceChildren(
    `Showing the ${hits.length} edges guarded by `,
    h('strong', { class: 'mono' }, id),
    ' ',
    h('button', { type: 'button', onclick: clearRule }, 'Clear'),
  );
  status.hidden = false;
  document.getElementById('history').scrollIntoView({ block: 'start' });
  if (hits[0]) {
    if (d.zoom < 0.6) d.setZoom(0.85);
    d.centreOn(hits[0]);
  }
}

function clearRule() {
  diagrams.diagram.clear('rule-hit');
  for (const tr of document.querySelectorAll('#rule-table tr.selected')) tr.classList.remove('selected');
  const status = document.getElementById('rule-status');
  status.hidden = true;
  status.replaceChildren();
}

// ---------------------------------------------------------------------------------------------------
// Diff

async function runDiff(event) {
  event.preventDefault();
  const status = document.getElementById('diff-status');
  const file = document.getElementById('diff-file').files[0];
  const pasted = document.getElementById('diff-text').value.trim();
  status.className = 'status';
  let text;
  if (file) text = await file.text();
  else if (pasted) text = pasted;
  else {
    status.className = 'status error';
    status.textContent = 'Choose a JSON export file or paste one first.';
    return;
  }
  status.textContent = 'Comparing…';
  let result;
  try {
    result = await getJson('/api/diff', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: text });
  } catch (error) {
    status.className = 'status error';
    status.textContent = `Could not compare: ${error.message}`;
    document.getElementById('diff-result').hidden = true;
    return;
  }
  const s = result.summary;
  status.textContent = `${s.added} added, ${s.removed} removed, ${s.reguarded} re-guarded, ${s.unchanged} unchanged.`;
  renderDiff(result);
}

function renderDiff(result) {
  document.getElementById('diff-result').hidden = false;
  const body = document.querySelector('#diff-table tbody');
  body.replaceChildren();
  const rules = (list) => (list ? (list.length ? list.join(', ') : '(none)') : '—');
  if (result.rows.length === 0) body.append(h('tr', {}, h('td', { colspan: 7 }, 'No edge differs.')));
  for (const r of result.rows) {
    const tr = h(
      'tr',
      { class: r.change, 'data-edge': r.edge || '', tabindex: r.edge ? 0 : null },
      h('td', { class: 'change' }, r.change),
      h('td', { class: 'mono' }, r.event),
      h('td', { class: 'mono' }, r.from),
      h('td', { class: 'mono' }, r.to),
      h('td', { class: 'mono' }, rules(r.before)),
      h('td', { class: 'mono' }, rules(r.after)),
      h('td', {}, r.note),
    );
    if (r.edge) {
      const select = () => selectDiffEdge(r.edge, tr);
      tr.addEventListener('click', select);
      tr.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          select();
        }
      });
    }
    body.append(tr);
  }
  const other = document.getElementById('diff-other');
  other.replaceChildren();
  const d = result.diff;
  const note = (label, list) => list.length && other.append(h('li', {}, `${label}: `, h('span', { class: 'mono' }, list.join(', '))));
  note('States added', d.statesAdded);
  note('States removed', d.statesRemoved);
  note('Rules added to the catalog', d.rulesAdded);
  note('Rules removed from the catalog', d.rulesRemoved);
  note('Rules with a new text', d.rulesChanged);

  const dd = diagrams['diff-diagram'];
  dd.load(result.svg);
  dd.svg.classList.add('diffing');
  dd.fit();
}

function selectDiffEdge(id, row) {
  const dd = diagrams['diff-diagram'];
  dd.clear('selected');
  for (const tr of document.querySelectorAll('#diff-table tr.selected')) tr.classList.remove('selected');
  row.classList.add('selected');
  const edge = dd.edge(id);
  if (!edge) return;
  edge.classList.add('selected');
  if (dd.zoom < 0.6) dd.setZoom(0.8);
  dd.centreOn(edge);
}

// ---------------------------------------------------------------------------------------------------

function wireZoom() {
  for (const b of document.querySelectorAll('[data-zoom]')) {
    b.addEventListener('click', () => {
      const d = diagrams[b.dataset.target];
      if (!d || !d.svg) return;
      if (b.dataset.zoom === 'in') d.zoomBy(1.25);
      else if (b.dataset.zoom === 'out') d.zoomBy(0.8);
      else if (b.dataset.zoom === 'fit') d.fit();
      else d.setZoom(1);
    });
  }
  document.getElementById('show-current').addEventListener('click', () => {
    const s = state.history && state.history.steps[state.step];
    if (s) diagrams.diagram.centreOn(diagrams.diagram.state(s.after.leaf));
  });
}

function wireKeys() {
  document.addEventListener('keydown', (e) => {
    if (!state.history || e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT')) return;
    if (t && t.classList && t.classList.contains('diagram-scroll')) return; // arrows scroll the diagram
    if (e.key === 'ArrowLeft') {
      e.preventDefault();
      showStep(state.step - 1);
    } else if (e.key === 'ArrowRight') {
      e.preventDefault();
      showStep(state.step + 1);
    }
  });
}

async function main() {
  diagrams.diagram = new Diagram(document.getElementById('diagram'));
  diagrams['diff-diagram'] = new Diagram(document.getElementById('diff-diagram'));
  wireZoom();
  wireKeys();
  el.prev().addEventListener('click', () => showStep(state.step - 1));
  el.next().addEventListener('click', () => showStep(state.step + 1));
  el.picker().addEventListener('change', (e) => {
    if (e.target.value) loadHistory(e.target.value);
  });
  document.getElementById('rule-filter').addEventListener('input', filterRules);
  document.getElementById('diff-form').addEventListener('submit', runDiff);

  // The picker's first page is asked for beside the diagram, not after it: at 100,000 domains counting the
  // matches is the longest request of the first load.
  const [model, catalog] = await Promise.all([getJson('/api/diagram.json'), getJson('/api/rules'), loadView('overview', ''), loadDomains()]);
  fillFocusPicker(model);
  document.getElementById('diagram-view').addEventListener('change', onViewChange);
  document.getElementById('diagram-focus').addEventListener('change', onViewChange);
  document.getElementById('model-summary').textContent =
    `${countStates(model.states)} states · ${model.edges.length} edges · ${model.rules.length} rules (${model.nonEdgeRules.length} not on any edge)` +
    (model.uncataloguedRules.length ? ` · on edges but not in the catalog: ${model.uncataloguedRules.join(', ')}` : '');
  document.body.dataset.diagram = 'ready';
  renderRules(catalog.rules);
  wireDomainSearch();
  const wanted = new URLSearchParams(location.hash.slice(1)).get('domain');
  if (wanted) {
    await loadHistory(wanted);
    if (state.domains.some((d) => domainKey(d) === wanted)) el.picker().value = wanted;
  }
  document.body.dataset.ready = 'true';
}

// ---------------------------------------------------------------------------------------------------
// Views: the overview (default), every edge, or a focus on a state, verb or rule

/** Loads a view into the main diagram, fitted, with its legend; the current step stays highlighted. */
async function loadView(view, focus) {
  const q = view === 'focus' ? `?view=focus&focus=${encodeURIComponent(focus)}` : `?view=${view}`;
  const [svg, graph] = await Promise.all([
    fetch(`/api/diagram.svg${q}`).then(async (r) => {
      if (!r.ok) throw new Error(`diagram: ${(await r.json().catch(() => ({}))).error || `${r.status} ${r.statusText}`}`);
      return r.text();
    }),
    getJson(`/api/view.json${q}`),
  ]);
  const d = diagrams.diagram;
  d.view = view;
  d.load(svg);
  d.fit();
  renderLegend(graph);
  document.body.dataset.view = view === 'focus' ? `focus:${focus}` : view;
  const s = state.history && state.history.steps[state.step];
  if (s) highlight(s);
}

async function onViewChange() {
  const view = document.getElementById('diagram-view').value;
  const picker = document.getElementById('diagram-focus');
  picker.disabled = view !== 'focus';
  if (view === 'focus' && !picker.value) return picker.focus();
  document.body.dataset.view = 'loading';
  try {
    await loadView(view, picker.value);
  } catch (error) {
    document.getElementById('diagram-legend').replaceChildren(h('p', { class: 'status error', role: 'alert' }, error.message));
    document.body.dataset.view = 'error';
  }
}

function fillFocusPicker(model) {
  const picker = document.getElementById('diagram-focus');
  const paths = [];
  const walk = (list) => list.forEach((s) => (paths.push(s.path), walk(s.children)));
  walk(model.states);
  const verbs = [...new Set(model.edges.map((e) => e.event))];
  const rules = model.rules.filter((r) => r.onEdges).map((r) => r.id);
  const group = (label, values, prefix) => h('optgroup', { label }, values.map((v) => h('option', { value: v }, `${prefix}${v}`)));
  picker.append(group('States (their exits)', paths, ''), group('Verbs', verbs, ''), group('Rules', rules, ''));
}

/** The view's legend: the guards named once instead of on every label, and each verb's other guards. */
function renderLegend(graph) {
  const box = document.getElementById('diagram-legend');
  const parts = [h('p', { class: 'legend-title' }, graph.title || 'Every edge, each labelled verb [RULE-ID, …]')];
  const legend = graph.legend;
  if (legend && legend.common.length > 0) {
    parts.push(
      h(
        'p',
        {},
        'On no label, checked first: ',
        ...legend.common.map((c, i) => [
          i > 0 ? '; ' : '',
          h('strong', { class: 'mono' }, c.id),
          c.except.length ? ` (every verb but ${c.except.join(', ')})` : ' (every verb)',
        ]),
        '. ↺ lists the verbs that leave a state as it is.',
      ),
    );
  }
  if (legend && legend.verbs.length > 0) {
    parts.push(
      h(
        'dl',
        { class: 'verb-guards' },
        legend.verbs.map((v) => [h('dt', { class: 'mono' }, v.verb), h('dd', { class: 'mono' }, v.rules.join(', ') || '—')]),
      ),
    );
  }
  box.replaceChildren(...parts);
}

function countStates(states) {
  return states.reduce((n, s) => n + 1 + countStates(s.children), 0);
}

document.addEventListener('DOMContentLoaded', () => {
  main().catch((error) => {
    const box = document.getElementById('diagram');
    box.replaceChildren(h('p', { class: 'status error', role: 'alert' }, `The page could not load: ${error.message}`));
    document.body.dataset.ready = 'error';
  });
});
