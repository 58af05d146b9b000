// Drives the Plowline dashboard in headless Debian Chromium (playwright-core, never a downloaded browser) and
// prints a JSON report of what the page showed: console errors, the totals, the traffic chart's bars, the top
// tables, the feed under filters, an opened event and an opened bad row. Screenshots go to <screenshot-dir>.
//
//   node dashboard_run.mjs <dashboard-url> <screenshot-dir> [timeout-ms]
//
// PLOWLINE_CHROMIUM overrides the browser binary (default /usr/bin/chromium).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [dashboardUrl, shotDir, timeoutArg = '30000'] = process.argv.slice(2);
if (!dashboardUrl || !shotDir) {
  console.error('usage: node dashboard_run.mjs <dashboard-url> <screenshot-dir> [timeout-ms]');
  process.exit(2);
}
const timeout = Number.parseInt(timeoutArg, 10);
mkdirSync(shotDir, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.PLOWLINE_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-default-apps',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});

const report = { consoleErrors: [], failedRequests: [], screenshots: [] };
let exitCode = 1;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(timeout);
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') report.consoleErrors.push(`${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => report.consoleErrors.push(`pageerror: ${error.message}`));
  page.on('requestfailed', (request) => report.failedRequests.push(`${request.url()} ${request.failure()?.errorText}`));
  page.on('response', (response) => {
    if (response.status() >= 400) report.failedRequests.push(`${response.status()} ${response.url()}`);
  });
  const shot = async (name) => {
    const path = join(shotDir, name);
    await page.screenshot({ path, fullPage: true });
    report.screenshots.push(path);
  };

  await page.goto(dashboardUrl, { waitUntil: 'load' });
  await page.waitForSelector('body[data-loaded]');
  const firstLoad = await page.evaluate(() => document.body.dataset.loaded);
  report.title = await page.title();
  report.summary = await page.$$eval('#summary .card', (cards) => Object.fromEntries(
    cards.map((card) => [card.dataset.metric, Number(card.querySelector('.value').textContent.replace(/,/g, ''))])));
  report.bars = await page.$$eval('#traffic rect.bar:not(.bad)', (bars) => bars.map((bar) => Number(bar.dataset.count)));
  report.badBars = await page.$$eval('#traffic rect.bar.bad', (bars) => bars.map((bar) => Number(bar.dataset.count)));
  report.tops = {};
  for (const name of ['pages', 'referrers', 'campaigns', 'devices', 'browsers', 'countries']) {
    report.tops[name] = await page.$$eval(`[data-top="${name}"] tr`, (rows) => rows.map((row) => ({
      label: row.querySelector('td.label div').textContent, count: Number(row.querySelector('td.num').textContent.replace(/,/g, '')),
    })));
  }
  report.feed = await page.$$eval('#feed tbody tr[data-id]', (rows) => rows.map((row) => ({ id: row.dataset.id, status: row.dataset.status, type: row.dataset.type })));
  await shot('dashboard-overview.png');

  // Auto refresh: the page loads its data again by itself.
  await page.waitForFunction((first) => document.body.dataset.loaded !== first, firstLoad);
  report.autoRefreshed = true;

  // A filter: only struct events.
  await page.selectOption('#f-event', 'struct');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#feed tbody tr[data-id]')];
    return rows.length > 0 && rows.every((row) => row.dataset.type === 'struct');
  });
  report.structFeed = await page.$$eval('#feed tbody tr[data-id]', (rows) => rows.map((row) => ({ id: row.dataset.id, type: row.dataset.type })));
  await shot('dashboard-filter-struct.png');

  // An event opens to its full JSON.
  await page.click('#feed tbody tr[data-id]');
  await page.waitForFunction(() => document.querySelector('#detail').open && document.querySelector('#detail-json').textContent.startsWith('{'));
  report.opened = JSON.parse(await page.textContent('#detail-json'));
  report.openedTitle = await page.textContent('#detail-title');
  await shot('dashboard-event.png');
  await page.click('#close');

  // Bad rows, browsable with their failure messages.
  await page.selectOption('#f-event', '');
  await page.selectOption('#f-status', 'bad');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#feed tbody tr[data-id]')];
    return rows.length > 0 && rows.every((row) => row.dataset.status === 'bad');
  });
  report.badFeed = await page.$$eval('#feed tbody tr[data-id]', (rows) => rows.map((row) => ({ id: row.dataset.id, type: row.dataset.type })));
  await page.click('#feed tbody tr[data-id]');
  await page.waitForFunction(() => document.querySelector('#detail-json').textContent.startsWith('{'));
  report.badMessages = await page.$$eval('#detail-messages li', (items) => items.map((item) => item.textContent));
  report.badRow = JSON.parse(await page.textContent('#detail-json'));
  await shot('dashboard-bad-row.png');
  exitCode = 0;
} catch (error) {
  report.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(exitCode);
