// ES2015+ syntax a script written today uses: classes, arrows, destructuring, template literals,
// spread, Map, default parameters, optional chaining, nullish coalescing, for-of.
class Classifier {
  #rules;
  constructor(rules) { this.#rules = new Map(Object.entries(rules)); }
  classify(url = '') {
    for (const [label, prefix] of this.#rules) {
      if (url.startsWith(prefix)) return label;
    }
    return 'other';
  }
}

const classifier = new Classifier({ shop: 'https://shop.', blog: 'https://blog.' });

function process(event, { tag = 'none', nested } = {}) {
  const [scheme] = (event.getPage_url() ?? 'none:').split(':');
  const section = classifier.classify(event.getPage_url() ?? undefined);
  const extra = { ...{ scheme }, section };
  return [{
    schema: `iglu:com.acme/page_section/jsonschema/1-0-0`,
    data: { ...extra, tag, label: nested?.label ?? 'unlabelled', sum: [1, 2, 3].reduce((a, b) => a + b, 0) }
  }];
}
