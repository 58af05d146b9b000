// Drops events from the app ids listed in the enrichment's config: {"droppedAppIds": [...]}.
function process(event, params) {
  var dropped = params.droppedAppIds || [];
  if (dropped.indexOf(event.getApp_id()) >= 0) {
    event.drop();
  }
}
