// The Plowline dashboard: fetches /dashboard/api/* and draws the page. Vanilla JS, no build step, no
// network beyond this origin. Charts are SVG drawn here. Text from the warehouse is only ever set as
// textContent (never parsed as HTML), so event data cannot inject markup.
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';
const PAGE_SIZE = 50;
const DIMENSIONS = ['pages', 'referrers', 'campaigns', 'devices', 'browsers', 'countries'];
const PRESETS = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };

const state = { offset: 0, timer: null, refreshMs: 5000, loading: false, detailJson: '' };
const $ = (selector) => document.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child);
  return node;
}

async function api(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, value]) => value !== '' && value != null));
  const url = `api/${path}${query.toString() ? `?${query}` : ''}`;
  const response = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// --- the date range -----------------------------------------------------------------------------------

function localInput(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60e3);
  return shifted.toISOString().slice(0, 16);
}

function currentRange() {
  const preset = $('#preset').value;
  if (preset === 'all') return {};
  if (preset === 'custom') {
    const from = $('#from').value ? new Date($('#from').value).toISOString() : '';
    const to = $('#to').value ? new Date($('#to').value).toISOString() : '';
    return { from, to };
  }
  const now = Date.now();
  return { from: new Date(now - PRESETS[preset]).toISOString(), to: new Date(now + 60e3).toISOString() };
}

function syncRangeInputs() {
  const preset = $('#preset').value;
  const custom = preset === 'custom';
  $('#from').disabled = !custom;
  $('#to').disabled = !custom;
  if (!custom && preset !== 'all') {
    const range = currentRange();
    $('#from').value = localInput(new Date(range.from));
    $('#to').value = localInput(new Date(range.to));
  } else if (preset === 'all') {
    $('#from').value = '';
    $('#to').value = '';
  }
}

// --- formatting ------------------------------------------------------------------------------------------

const number = new Intl.NumberFormat('en');
function fmtTime(iso) {
  return iso ? iso.replace('T', ' ').replace('Z', '').slice(0, 23) : '';
}

function setStatus(text, error = false) {
  const status = $('#status');
  status.textContent = text;
  status.classList.toggle('error', error);
}

// --- totals ------------------------------------------------------------------------------------------------

function drawSummary(data) {
  const cards = [
    ['events', 'Events', data.events], ['page_views', 'Page views', data.page_views],
    ['users', 'Users', data.users], ['sessions', 'Sessions', data.sessions], ['bad', 'Bad rows', data.bad],
  ];
  $('#summary').replaceChildren(...cards.map(([key, name, value]) => el('div',
    { class: `card ${key === 'bad' ? 'bad' : ''}`, 'data-metric': key },
    el('div', { class: 'value', text: number.format(value ?? 0) }), el('div', { class: 'name', text: name }))));
}

// --- traffic chart ---------------------------------------------------------------------------------------

function drawTraffic(data) {
  const box = $('#traffic');
  $('#bucket').textContent = data.points.length ? `per ${data.bucket}` : '';
  if (!data.points.length) {
    box.replaceChildren(el('p', { class: 'empty', text: 'No events in this range.' }));
    return;
  }
  const width = 900; const height = 220; const left = 44; const bottom = 22; const top = 8;
  const points = data.points;
  const max = Math.max(1, ...points.map((p) => Math.max(p.events, p.bad)));
  const step = (width - left) / points.length;
  const y = (value) => top + (height - top - bottom) * (1 - value / max);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': 'Events over time' });
  chart.append(svg('line', { class: 'axis', x1: left, x2: width, y1: y(0), y2: y(0) }));
  for (const fraction of [0.5, 1]) {
    const value = Math.round(max * fraction);
    chart.append(svg('text', { x: left - 6, y: y(value) + 4, 'text-anchor': 'end' }, String(value)));
    chart.append(svg('line', { class: 'axis', x1: left, x2: width, y1: y(value), y2: y(value) }));
  }
  const barWidth = Math.max(1, step * 0.8);
  points.forEach((point, index) => {
    const x = left + index * step;
    const label = `${fmtTime(point.t)} UTC: ${point.events} events, ${point.page_views} page views, ` +
      `${point.users} users, ${point.bad} bad rows`;
    if (point.events > 0) {
      chart.append(svg('rect', { class: 'bar', 'data-count': point.events, x, y: y(point.events), width: barWidth,
        height: y(0) - y(point.events) }, svg('title', {}, label)));
    }
    if (point.bad > 0) {
      chart.append(svg('rect', { class: 'bar bad', 'data-count': point.bad, x: x + barWidth * 0.5, y: y(point.bad),
        width: barWidth * 0.5, height: y(0) - y(point.bad) }, svg('title', {}, label)));
    }
  });
  const line = points.map((point, index) => `${index ? 'L' : 'M'}${left + index * step + barWidth / 2},${y(point.page_views)}`);
  chart.append(svg('path', { class: 'line', d: line.join(' ') }));
  const ticks = points.length > 1 ? [0, Math.floor((points.length - 1) / 2), points.length - 1] : [0];
  for (const index of ticks) {
    const anchor = index === 0 ? 'start' : index === points.length - 1 ? 'end' : 'middle';
    const text = data.bucket === 'day' ? points[index].t.slice(0, 10) : fmtTime(points[index].t).slice(5, 16);
    chart.append(svg('text', { x: left + index * step + (anchor === 'end' ? barWidth : 0), y: height - 6,
      'text-anchor': anchor }, text));
  }
  box.replaceChildren(chart);
}

// --- top N tables ------------------------------------------------------------------------------------------

function drawTop(name, rows) {
  const box = document.querySelector(`[data-top="${name}"] .top`);
  if (!rows.length) {
    box.replaceChildren(el('p', { class: 'empty', text: 'Nothing in this range.' }));
    return;
  }
  const max = Math.max(...rows.map((row) => row.count));
  const body = rows.map((row) => {
    const meter = el('div', { class: 'meter' });
    meter.style.width = `${Math.max(1, (100 * row.count) / max)}%`;
    const label = el('td', { class: 'label', title: row.label }, el('div', { text: row.label }), meter);
    if (row.detail) label.append(el('div', { class: 'detail', text: row.detail }));
    return el('tr', {}, label, el('td', { class: 'num', text: number.format(row.count) }),
      el('td', { class: 'num', text: `${number.format(row.users)} ${row.users === 1 ? 'user' : 'users'}` }));
  });
  box.replaceChildren(el('table', {}, el('tbody', {}, ...body)));
}

// --- the live feed -----------------------------------------------------------------------------------------

function feedParams() {
  return { ...currentRange(), status: $('#f-status').value, event: $('#f-event').value, app: $('#f-app').value,
    schema: $('#f-schema').value, limit: PAGE_SIZE, offset: state.offset };
}

function drawFeed(data) {
  const rows = data.items.map((item) => el('tr', {
    'data-id': item.id, 'data-status': item.status, 'data-type': item.type ?? '', tabindex: '0',
    onclick: () => openDetail(item), onkeydown: (event) => { if (event.key === 'Enter') openDetail(item); },
  },
  el('td', { text: fmtTime(item.time) }),
  el('td', {}, el('span', { class: `pill ${item.status}`, text: item.status })),
  el('td', { text: item.type ?? '' }),
  el('td', { text: item.app ?? '' }),
  el('td', { text: item.schema ?? '', title: item.schema ?? '' }),
  el('td', { text: item.detail ?? '', title: item.detail ?? '' })));
  const body = $('#feed tbody');
  if (rows.length) body.replaceChildren(...rows);
  else body.replaceChildren(el('tr', {}, el('td', { colspan: '6', class: 'empty', text: 'No events match.' })));
  $('#newer').disabled = state.offset === 0;
  $('#older').disabled = data.items.length < PAGE_SIZE;
  $('#page').textContent = data.items.length ? `${state.offset + 1}–${state.offset + data.items.length}` : '';
}

function fillSelect(select, values) {
  const chosen = select.value;
  const options = [el('option', { value: '', text: 'Any' }), ...values.map((value) => el('option', { value, text: value }))];
  if (chosen && !values.includes(chosen)) options.push(el('option', { value: chosen, text: chosen }));
  select.replaceChildren(...options);
  select.value = chosen;
}

function drawOptions(options) {
  fillSelect($('#f-event'), options.event);
  fillSelect($('#f-app'), options.app);
  fillSelect($('#f-schema'), [...options.schema, ...options.bad_schema]);
}

async function openDetail(item) {
  const dialog = $('#detail');
  $('#detail-title').textContent = `${item.status === 'bad' ? 'Bad row' : 'Event'} ${item.id}`;
  $('#detail-messages').replaceChildren();
  $('#detail-json').textContent = 'Loading…';
  if (!dialog.open) dialog.showModal();
  try {
    const detail = await api(item.status === 'bad' ? `bad/${encodeURIComponent(item.id)}` : `events/${encodeURIComponent(item.id)}`);
    const shown = item.status === 'bad' ? detail.row : detail.event;
    state.detailJson = JSON.stringify(shown, null, 2);
    $('#detail-json').textContent = state.detailJson;
    $('#detail-messages').replaceChildren(...(detail.messages || []).map((message) => el('li', { text: message })));
  } catch (error) {
    $('#detail-json').textContent = `Could not load it: ${error.message}`;
  }
}

// --- refreshing ----------------------------------------------------------------------------------------

async function refresh() {
  if (state.loading) return;
  state.loading = true;
  setStatus('Loading…');
  const range = currentRange();
  try {
    const [summary, traffic, options, feed, derived, ...tops] = await Promise.all([
      api('summary', range), api('timeseries', range), api('options'), api('events', feedParams()), api('derived'),
      ...DIMENSIONS.map((name) => api(`top/${name}`, range)),
    ]);
    drawSummary(summary);
    drawTraffic(traffic);
    drawOptions(options);
    drawFeed(feed);
    DIMENSIONS.forEach((name, index) => drawTop(name, tops[index]));
    $('#derived-panel').hidden = derived.length === 0;
    $('#derived tbody').replaceChildren(...derived.map((table) => el('tr', {},
      el('td', { text: `derived.${table.name}` }), el('td', { text: number.format(table.rows) }))));
    document.body.dataset.loaded = String(Date.now());
    setStatus(`Updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  } finally {
    state.loading = false;
  }
}

async function refreshFeed() {
  try {
    drawFeed(await api('events', feedParams()));
    document.body.dataset.feedLoaded = String(Date.now());
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  }
}

function schedule() {
  clearInterval(state.timer);
  state.timer = null;
  if ($('#auto').checked) {
    state.timer = setInterval(() => {
      if ($('#preset').value !== 'custom') syncRangeInputs();
      if (!$('#detail').open) refresh();
    }, state.refreshMs);
  }
}

async function start() {
  try {
    const config = await api('config');
    state.refreshMs = config.refresh_s * 1000;
    $('#every').textContent = `(${config.refresh_s}s)`;
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  }
  syncRangeInputs();
  $('#preset').addEventListener('change', () => { syncRangeInputs(); state.offset = 0; refresh(); });
  for (const input of [$('#from'), $('#to')]) input.addEventListener('change', () => { state.offset = 0; refresh(); });
  $('#auto').addEventListener('change', schedule);
  $('#refresh').addEventListener('click', refresh);
  $('#filters').addEventListener('change', () => { state.offset = 0; refreshFeed(); });
  $('#older').addEventListener('click', () => { state.offset += PAGE_SIZE; refreshFeed(); });
  $('#newer').addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); refreshFeed(); });
  $('#close').addEventListener('click', () => $('#detail').close());
  $('#copy').addEventListener('click', () => navigator.clipboard?.writeText(state.detailJson).catch(() => {}));
  await refresh();
  schedule();
}

document.addEventListener('DOMContentLoaded', start);
