// Sends events to a collector with the official @snowplow/node-tracker, then prints a JSON report.
//
//   node node_tracker.mjs <collector-url> <count> [post|get] [page-url] [referrer]
//
// Events cycle through page view, structured event and self-describing event; every event carries
// a custom context. The report lists what the tracker built for each event (its eid and payload)
// and what its emitter callbacks said was sent, so the caller can compare with the collector's log.
// Page views go to `page-url` ("{i}" is replaced by the event's index) with `referrer` as referrer
// (defaults: http://shop.example/page/{i}?q=a%20b&x=1 and http://ref.example/).
import { buildPageView, buildSelfDescribingEvent, buildStructEvent, newTracker, version } from '@snowplow/node-tracker';

const [
  collectorUrl, countArg, methodArg = 'post', pageUrlArg = 'http://shop.example/page/{i}?q=a%20b&x=1', referrer = 'http://ref.example/',
] = process.argv.slice(2);
const count = Number.parseInt(countArg ?? '', 10);
if (!collectorUrl || !Number.isInteger(count) || count < 1 || !['post', 'get'].includes(methodArg)) {
  console.error('usage: node node_tracker.mjs <collector-url> <count> [post|get] [page-url] [referrer]');
  process.exit(2);
}

const sent = [];
const failures = [];
const tracker = newTracker(
  { namespace: 'e2e-node', appId: 'plowline-e2e-node', encodeBase64: methodArg === 'get' },
  {
    endpoint: collectorUrl,
    eventMethod: methodArg,
    bufferSize: 4,
    retryFailedRequests: false,
    onRequestSuccess: (batch) => sent.push(...batch.map((payload) => payload.eid)),
    onRequestFailure: (failure) => failures.push({ status: failure.status ?? null, message: failure.message ?? null, eids: failure.events.map((p) => p.eid) }),
  },
);
tracker.setDomainUserId('d0d0d0d0-0000-4000-8000-00000000e2e0');

const tracked = [];
for (let i = 0; i < count; i += 1) {
  const context = [{ schema: 'iglu:com.acme/e2e_context/jsonschema/1-0-0', data: { index: i, runner: 'node' } }];
  let builder;
  switch (i % 3) {
    case 0:
      builder = buildPageView({ pageUrl: pageUrlArg.replaceAll('{i}', String(i)), pageTitle: `Page ${i} – ünïcode`, referrer });
      break;
    case 1:
      builder = buildStructEvent({ category: 'e2e', action: `action-${i}`, label: 'label with spaces & symbols', property: 'prop', value: i + 0.5 });
      break;
    default:
      builder = buildSelfDescribingEvent({ event: { schema: 'iglu:com.acme/e2e_event/jsonschema/1-0-0', data: { index: i, text: 'ünïcode ✓' } } });
  }
  const payload = tracker.track(builder, context);
  if (!payload) {
    console.error(`tracker skipped event ${i}`);
    process.exit(1);
  }
  tracked.push(Object.fromEntries(Object.entries(payload).map(([key, value]) => [key, String(value)])));
}

await tracker.flush();
// flush() resolves once the queue has been handed to fetch; wait until every event is accounted for.
const deadline = Date.now() + 20000;
const accounted = () => sent.length + failures.reduce((n, f) => n + f.eids.length, 0);
while (accounted() < count && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 20));
}

process.stdout.write(JSON.stringify({ version, method: methodArg, tracked, sent, failures }) + '\n');
process.exit(failures.length === 0 && sent.length === count ? 0 : 1);
