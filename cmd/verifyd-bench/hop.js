// The bare one-hop proxy in Node (see hop.go): request-otp's JSON in, the
// form POST to the stand-in over a keep-alive TLS agent, JSON out. Node's
// own modules only.
"use strict";
const http = require("node:http");
const https = require("node:https");
const fs = require("node:fs");

const upstream = new URL(process.env.HOP_UPSTREAM);
const auth = "Basic " + Buffer.from(process.env.HOP_USER + ":" + process.env.HOP_PASSWORD).toString("base64");
const agent = new https.Agent({ keepAlive: true, maxSockets: 512, ca: fs.readFileSync(process.env.HOP_CA_FILE) });

function reply(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
  res.end(data);
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/healthz") return reply(res, 200, {});
  if (req.method !== "POST" || req.url !== "/api/request-otp") return reply(res, 404, { error: "not found" });
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let to;
    try {
      to = JSON.parse(Buffer.concat(chunks).toString()).phoneNumber;
    } catch {
      return reply(res, 400, { error: "bad json" });
    }
    const form = new URLSearchParams({ To: to, Channel: "sms" }).toString();
    const up = https.request(upstream, {
      method: "POST", agent,
      headers: { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(form), Authorization: auth },
    }, (ur) => {
      const body = [];
      ur.on("data", (c) => body.push(c));
      ur.on("end", () => {
        try {
          const v = JSON.parse(Buffer.concat(body).toString());
          if (ur.statusCode !== 201) throw new Error("status " + ur.statusCode);
          reply(res, 200, { verificationSid: v.sid, status: v.status });
        } catch {
          reply(res, 502, { error: "upstream" });
        }
      });
    });
    up.on("error", () => reply(res, 502, { error: "upstream" }));
    up.end(form);
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.env.PORT), process.env.HOST);
process.on("SIGTERM", () => server.close(() => process.exit(0)));
