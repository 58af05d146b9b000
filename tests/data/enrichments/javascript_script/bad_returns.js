// Returns something other than null or an array of self-describing JSONs, chosen by app_id.
function process(event) {
  switch (event.getApp_id()) {
    case "object": return { schema: "iglu:com.acme/x/jsonschema/1-0-0", data: {} };
    case "string": return "hello";
    case "number": return 42;
    case "no-data": return [{ schema: "iglu:com.acme/x/jsonschema/1-0-0" }];
    case "bad-uri": return [{ schema: "com.acme/x/1-0-0", data: {} }];
    case "bad-version": return [{ schema: "iglu:com.acme/x/jsonschema/1-0", data: {} }];
    case "not-object": return ["iglu:com.acme/x/jsonschema/1-0-0"];
    case "circular": { const a = {}; a.self = a; return [{ schema: "iglu:com.acme/x/jsonschema/1-0-0", data: a }]; }
    case "nan": return [{ schema: "iglu:com.acme/x/jsonschema/1-0-0", data: { n: NaN, u: undefined } }];
    case "undefined": return undefined;
    default: return [];
  }
}
