// Reads a token from the X-JWT request header (Snowplow docs example, strict-mode safe).
function process(event, params, headers) {
  for (const header of headers) {
    const token = header.match(/X-JWT:(.+)/i);
    if (token) {
      const value = token[1].trim();
      return [{ schema: "iglu:com.acme/jwt/jsonschema/1-0-0", data: { token: value } }];
    }
  }
  return [];
}
