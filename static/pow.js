// verifyd's proof-of-work solver, run as a Web Worker so the page stays
// responsive: it finds the number n for which SHA-256(salt + n) is the
// challenge (ALTCHA's protocol), and answers the payload the server checks.
'use strict';
self.onmessage = async (ev) => {
  const c = ev.data;
  const enc = new TextEncoder();
  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
  const started = Date.now();
  for (let n = 0; n <= c.maxnumber; n += 1) {
    // eslint-disable-next-line no-await-in-loop
    if (hex(await crypto.subtle.digest('SHA-256', enc.encode(c.salt + n))) === c.challenge) {
      const payload = { algorithm: c.algorithm, challenge: c.challenge, number: n, salt: c.salt,
        signature: c.signature, took: Date.now() - started };
      self.postMessage({ ok: true, payload: btoa(JSON.stringify(payload)) });
      return;
    }
  }
  self.postMessage({ ok: false });
};
