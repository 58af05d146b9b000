// Fails in the ways user scripts do.
function process(event) {
  switch (event.getApp_id()) {
    case "string": throw "Server-side event has invalid app_id: " + event.getApp_id();
    case "error": throw new Error("boom");
    case "type-error": return event.getUser_id().toUpperCase();
    case "java": return org.apache.commons.codec.digest.DigestUtils.sha256Hex("x");
    case "recursion": { const f = () => f(); return f(); }
    default: return [];
  }
}
