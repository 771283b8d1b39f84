// The job of a typical Node.js WhatsApp webhook (Express): check X-Hub-Signature-256 over the raw
// body (constant time), parse the JSON, walk the entries. Shared by the receiver and the Lambda.
const crypto = require("crypto");

function verifyAndParse(rawBody, header, appSecret) {
  if (typeof header !== "string" || !header.startsWith("sha256=")) return null;
  const expected = crypto.createHmac("sha256", appSecret).update(rawBody).digest();
  const given = Buffer.from(header.slice(7), "hex");
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null;
  const payload = JSON.parse(rawBody.toString("utf8"));
  let events = 0;
  for (const entry of payload.entry || []) {
    for (const change of entry.changes || []) {
      const value = change.value || {};
      events += (value.messages || []).length + (value.statuses || []).length;
    }
  }
  return events;
}

module.exports = { verifyAndParse };
