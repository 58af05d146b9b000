// Rewrites the entities earlier enrichments added: erase them, return the edited copies.
function process(event) {
  const derived = JSON.parse(event.getDerived_contexts());
  event.eraseDerived_contexts();
  if (derived === null) {
    return [];
  }
  const kept = derived.data.filter(e => !e.schema.startsWith('iglu:org.ietf/http_header/'));
  for (const entity of kept) {
    if (entity.schema.startsWith('iglu:nl.basjes/yauaa_context/')) {
      entity.data.deviceBrand = "test1";
    }
  }
  return kept;
}
