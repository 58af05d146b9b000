// Adds a context derived from the useragent; drops nothing.
var botPattern = /bot|crawl|spider|slurp/i;

function process(event) {
  var ua = event.getUseragent();
  if (ua === null) {
    return null;
  }
  var mobile = /Mobile|Android|iPhone/.test(ua);
  return [{
    schema: "iglu:com.acme/useragent_summary/jsonschema/1-0-0",
    data: { isBot: botPattern.test(ua), isMobile: mobile, length: ua.length }
  }];
}
