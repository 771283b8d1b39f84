// An Express webhook receiver written like the usual tutorial code, but hashing the raw body as it
// must: `node express_receiver.js PORT APP_SECRET`.
const express = require("express");
const { verifyAndParse } = require("./webhook");

const [port, appSecret] = process.argv.slice(2);
const app = express();
app.post("/webhook", express.raw({ type: "*/*", limit: "3mb" }), (req, res) => {
  const events = verifyAndParse(req.body, req.get("x-hub-signature-256"), appSecret);
  if (events === null) return res.sendStatus(401);
  res.sendStatus(200);
});
app.listen(Number(port), "127.0.0.1", () => console.log(`express receiver on ${port}`));
