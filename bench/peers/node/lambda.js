// The same job as a Node.js Lambda function, with the Runtime API loop the managed runtime runs
// (GET next, handle, POST response). Express is loaded at init, as an Express-based function does.
require("express");
const { verifyAndParse } = require("./webhook");

const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime`;
const appSecret = process.env.WA_APP_SECRET;

async function handler(event) {
  const raw = Buffer.from(event.body || "", event.isBase64Encoded ? "base64" : "utf8");
  const headers = event.headers || {};
  const events = verifyAndParse(raw, headers["x-hub-signature-256"], appSecret);
  return { statusCode: events === null ? 401 : 200, body: events === null ? "invalid signature" : "ok" };
}

(async () => {
  for (;;) {
    const next = await fetch(`${api}/invocation/next`);
    const id = next.headers.get("lambda-runtime-aws-request-id");
    const result = await handler(await next.json());
    await fetch(`${api}/invocation/${id}/response`, { method: "POST", body: JSON.stringify(result) });
  }
})();
