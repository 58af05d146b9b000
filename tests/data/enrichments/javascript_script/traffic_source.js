// Label internal and external traffic, as in Snowplow's documentation examples.
const internalIPs = new Set([
  "1.2.3.4",
  "2.3.4.5"
]);

function process(event) {
  const ip = event.getUser_ipaddress();
  const traffic_source = internalIPs.has(ip) ? 'internal' : 'external';

  return [{
    schema: "iglu:com.acme/traffic_source/jsonschema/1-0-0",
    data: { traffic_source }
  }];
}
