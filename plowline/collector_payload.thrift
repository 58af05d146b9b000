// CollectorPayload, iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0.
// Field ids as every Snowplow collector and Enrich use them (spec/protocol.md 4.1), not the
// pre-2015 draft published in Iglu Central.
namespace py plowline.collector_payload

struct CollectorPayload {
  100: string ipAddress
  200: i64 timestamp
  210: string encoding
  220: string collector

  300: optional string userAgent
  310: optional string refererUri
  320: optional string path
  330: optional string querystring
  340: optional string body
  350: optional list<string> headers
  360: optional string contentType

  400: optional string hostname
  410: optional string networkUserId

  // Declared last so the encoder writes fields in ascending id order, as Java does.
  31337: string schema
}
