// Opens a test page in headless Debian Chromium (driven by playwright-core, which never downloads a browser)
// and prints a JSON report: what the page's tracker says it sent, the collector's responses as the browser
// saw them, and the cookies the browser kept for the collector.
//
//   node browser_run.mjs <page-url> <collector-url> <user-data-dir> [timeout-ms]
//
// PLOWLINE_CHROMIUM overrides the browser binary (default /usr/bin/chromium).
import { chromium } from 'playwright-core';

const [pageUrl, collectorUrl, userDataDir, timeoutArg = '30000'] = process.argv.slice(2);
if (!pageUrl || !collectorUrl || !userDataDir) {
  console.error('usage: node browser_run.mjs <page-url> <collector-url> <user-data-dir> [timeout-ms]');
  process.exit(2);
}
const timeout = Number.parseInt(timeoutArg, 10);

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.PLOWLINE_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    '--disable-domain-reliability',
    '--disable-breakpad',
    '--no-pings',
    // Nothing but loopback: any host name resolves to nothing, so the browser cannot reach the internet.
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  ],
});

const log = [];
const responses = [];
const preflights = [];
let exitCode = 1;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (message) => log.push(`console.${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => log.push(`pageerror: ${error.message}`));
  page.on('requestfailed', (request) => log.push(`requestfailed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`));
  page.on('response', (response) => {
    if (!response.url().startsWith(collectorUrl)) return;
    const entry = { method: response.request().method(), url: response.url(), status: response.status() };
    responses.push(response.allHeaders().then(
      (headers) => ({ ...entry, headers }),
      (error) => ({ ...entry, headers: { error: String(error) } }),
    ));
  });

  // CORS preflights are not page requests for Playwright; the DevTools protocol reports them (type Preflight).
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', ({ type, response }) => {
    if (type === 'Preflight' && response.url.startsWith(collectorUrl)) {
      preflights.push({ url: response.url, status: response.status, headers: response.headers });
    }
  });

  await page.goto(pageUrl, { waitUntil: 'load', timeout });
  await page.waitForFunction(() => window.__plowline && window.__plowline.done, null, { timeout });
  const state = await page.evaluate(() => window.__plowline);
  // The page counts answered requests; make sure the browser has reported each of their responses too.
  const deadline = Date.now() + timeout;
  while (responses.length < state.requests && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const cookies = await context.cookies([collectorUrl]);
  const browserVersion = context.browser()?.version() ?? null;
  process.stdout.write(JSON.stringify({ state, responses: await Promise.all(responses), preflights, cookies, browserVersion, log }) + '\n');
  exitCode = state.error === null && state.failures.length === 0 ? 0 : 1;
} catch (error) {
  console.error(String(error && error.stack || error));
  console.error(log.join('\n'));
} finally {
  await context.close();
}
process.exit(exitCode);
