// Sends events the IAB enrichment flagged as robots to failed events (Snowplow docs example).
function process(event) {
  const entities = JSON.parse(event.getDerived_contexts());
  if (entities) {
    for (const entity of entities.data) {
      if (entity.schema.startsWith('iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1') &&
          entity.data.spiderOrRobot) {
        throw "Filtered a spider/bot event";
      }
    }
  }
}
