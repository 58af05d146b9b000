// Reports what the getters return, to check they match Snowplow's Java POJO.
function process(event) {
  return [{
    schema: "iglu:com.acme/probe/jsonschema/1-0-0",
    data: {
      app_id: event.getApp_id(), app_id_property: event.app_id,
      user_id: event.getUser_id(),
      collector_tstamp: event.getCollector_tstamp(),
      refr_dvce_tstamp: event.getRefr_dvce_tstamp(),
      txn_id: event.getTxn_id(), txn_id_type: typeof event.getTxn_id(),
      geo_latitude: event.getGeo_latitude(),
      tr_total: event.getTr_total(), tr_total_type: typeof event.getTr_total(),
      br_cookies: event.getBr_cookies(), br_features_pdf: event.getBr_features_pdf(),
      contexts: event.getContexts(),
      unstruct_event: event.getUnstruct_event(),
      derived_contexts: event.getDerived_contexts(),
    }
  }];
}
