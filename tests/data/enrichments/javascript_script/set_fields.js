// Rewrites atomic fields, the unstruct event and the tracker contexts.
function process(event) {
  event.setMkt_source('Facegoog');
  if (event.getGeo_country() === 'US') {
    event.setGeo_latitude(null);
    event.setGeo_longitude(null);
  }
  event.setTxn_id(event.getTxn_id() + 1);
  event.setTr_total(event.getTr_total() * 2);
  event.setBr_features_pdf(0);
  event.setDvce_created_tstamp("2024-04-30 23:59:59.123");
  event.app_id = event.app_id + "-rewritten";

  const myEvent = JSON.parse(event.getUnstruct_event());
  if (myEvent && myEvent.data.schema === "iglu:com.acme/signup/jsonschema/1-0-0") {
    myEvent.data.data.plan = 'gold';
    event.setUnstruct_event(JSON.stringify(myEvent));
  }

  const entities = JSON.parse(event.getContexts());
  if (entities) {
    entities.data = entities.data.filter(e => e.schema !== 'iglu:com.acme/unwanted/jsonschema/1-0-0');
    for (const entity of entities.data) {
      if (entity.schema === 'iglu:com.acme/counter/jsonschema/1-0-0') {
        entity.data.count = entity.data.count + 1;
      }
    }
    event.setContexts(JSON.stringify(entities));
  }
}
