// Headless Debian Chromium (through playwright-core, which never downloads a browser) driven step by step:
// one JSON command per stdin line, one JSON answer per stdout line, so a Python test can act between
// steps (stop or restart the collector, sleep past a session timeout, read the raw log).
//
//   node browser_driver.mjs <user-data-dir> [timeout-ms]
//
// Commands ({"op": ..., ...}) and their answer's `value`:
//   goto {url}              load a page (waits for the load event)     -> the page URL
//   reload                  reload it                                  -> the page URL
//   eval {expr}             evaluate an expression (promises awaited)  -> its JSON value
//   wait {expr}             wait until the expression is truthy         -> its JSON value
//   click|focus|check {selector}, fill {selector, value}, select {selector, value}, press {selector, key}
//   open                    open a new tab; the next steps act on it    -> its index
//   tab {index}             act on that tab from now on
//   closeTab                close the current tab (its pagehide handlers run), act on the previous one
//   cookies {urls}          the browser's cookies for those URLs
//   log                     console messages, page errors and failed requests seen so far
//   close                   close the browser and exit
// Every answer is {"ok": true, "value": ...} or {"ok": false, "error": "..."}.
//
// PLOWLINE_CHROMIUM overrides the browser binary (default /usr/bin/chromium).
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const [userDataDir, timeoutArg = '30000'] = process.argv.slice(2);
if (!userDataDir) {
  console.error('usage: node browser_driver.mjs <user-data-dir> [timeout-ms]');
  process.exit(2);
}
const timeout = Number.parseInt(timeoutArg, 10);

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.PLOWLINE_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout,
  viewport: { width: 1000, height: 700 },
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
context.setDefaultTimeout(timeout);
const log = [];
const watch = (tab) => {
  tab.on('console', (message) => log.push(`console.${message.type()}: ${message.text()}`));
  tab.on('pageerror', (error) => log.push(`pageerror: ${error.message}`));
  tab.on('requestfailed', (request) => log.push(`requestfailed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`));
  return tab;
};
const tabs = [watch(context.pages()[0] ?? (await context.newPage()))];
let page = tabs[0];

const steps = {
  goto: async ({ url }) => (await page.goto(url, { waitUntil: 'load' }), page.url()),
  reload: async () => (await page.reload({ waitUntil: 'load' }), page.url()),
  eval: ({ expr }) => page.evaluate(expr),
  wait: async ({ expr }) => (await page.waitForFunction(expr, null, { timeout, polling: 50 })).jsonValue(),
  click: ({ selector }) => page.click(selector),
  focus: ({ selector }) => page.focus(selector),
  check: ({ selector }) => page.check(selector),
  fill: ({ selector, value }) => page.fill(selector, value),
  select: ({ selector, value }) => page.selectOption(selector, value),
  press: ({ selector, key }) => page.press(selector, key),
  open: async () => {
    page = watch(await context.newPage());
    tabs.push(page);
    return tabs.length - 1;
  },
  tab: ({ index }) => {
    page = tabs[index];
    return page.bringToFront();
  },
  closeTab: async () => {
    const closing = page;
    tabs.splice(tabs.indexOf(closing), 1);
    page = tabs[tabs.length - 1];
    await closing.close({ runBeforeUnload: true });
    await page.bringToFront();
  },
  cookies: ({ urls }) => context.cookies(urls),
  log: () => log.slice(),
};

const answer = (message) => process.stdout.write(JSON.stringify(message) + '\n');
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  if (command.op === 'close') break;
  try {
    const step = steps[command.op];
    if (!step) throw new Error(`unknown op ${command.op}`);
    const value = await step(command);
    answer({ ok: true, value: value === undefined ? null : value });
  } catch (error) {
    answer({ ok: false, error: String((error && error.stack) || error), log: log.slice(-20) });
  }
}
await context.close();
answer({ ok: true, value: 'closed' });
process.exit(0);
