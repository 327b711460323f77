// verifyd's form, enhanced: the same three steps without page loads, over
// the JSON API. Without this script the forms post and the server renders
// each step; with it, nothing about the rules or the messages changes.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const app = $('app');
  if (!app || !window.fetch) return;
  const steps = { phone: $('step-phone'), code: $('step-code'), done: $('step-done') };
  const cooldown = Number(app.dataset.cooldown) || 30;
  // The page's sentences in its language, from the server; tr fills {name}s.
  let texts = {};
  try { texts = JSON.parse(app.dataset.i18n || '{}'); } catch { /* English */ }
  const tr = (msg, args = {}) => Object.entries(args).reduce(
    (s, [k, v]) => s.split(`{${k}}`).join(String(v)), texts[msg] || msg);
  let number = ''; // the E.164 number the pending code went to
  let shown = ''; // the same, as the page shows it
  let timer = 0;

  const show = (name) => {
    for (const [k, el] of Object.entries(steps)) el.hidden = k !== name;
  };

  // setError shows msg under input; only an answer about what was typed
  // (400, 403, 410, 422) marks the field invalid: a wait or an outage is
  // no fault of the input.
  const setError = (input, el, msg, status) => {
    el.textContent = msg || '';
    if (msg && [400, 403, 410, 422].includes(status)) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  };

  // busy shows that a request is on its way on its button.
  const busy = (btn, on) => {
    if (on) { btn.dataset.label = btn.textContent; btn.textContent = tr('Sending…'); }
    else if (btn.dataset.label) btn.textContent = btn.dataset.label;
    btn.disabled = on;
  };

  const wait = (s) => (s >= 120 ? tr('{n} minutes', { n: Math.ceil(s / 60) }) : tr('{n} seconds', { n: s }));

  // post sends JSON and answers the body, with ok and a message ready to show.
  const post = async (path, body) => {
    let res;
    try {
      res = await fetch(path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch {
      return { ok: false, message: tr('We could not reach the server. Check your connection and try again.') };
    }
    let data = {};
    try { data = await res.json(); } catch { /* not JSON: a proxy's page */ }
    data.ok = res.ok;
    data.status = res.status;
    if (!res.ok) {
      // The server's sentence says the wait already, in the page's
      // language; a proxy's page only has its Retry-After header.
      const after = Number(res.headers.get('Retry-After')) || 0;
      const error = tr('Something went wrong. Please try again.');
      data.message = data.error || (after ? `${error} ${tr('You can try again in {wait}.', { wait: wait(after) })}` : error);
    }
    return data;
  };

  // solve runs the proof-of-work step-up in a Web Worker: the server asks
  // for it when sends to a destination look like pumping, and a person
  // should not notice more than a short "Checking…".
  const solve = (challenge) => new Promise((resolve) => {
    if (!window.Worker || !app.dataset.pow) { resolve(''); return; }
    const w = new Worker(app.dataset.pow);
    w.onmessage = (ev) => { w.terminate(); resolve(ev.data.ok ? ev.data.payload : ''); };
    w.onerror = () => { w.terminate(); resolve(''); };
    w.postMessage(challenge);
  });

  // sendCode asks for a code, solving a step-up first when asked for one
  // (at most twice: a fresh challenge comes with a failed one).
  const sendCode = async (body, onChecking) => {
    let data = await post('/api/request-otp', body);
    for (let i = 0; i < 2 && !data.ok && data.challenge &&
      (data.code === 'challenge_required' || data.code === 'challenge_failed'); i += 1) {
      onChecking();
      const altcha = await solve(data.challenge);
      if (!altcha) break;
      data = await post('/api/request-otp', { ...body, altcha });
    }
    return data;
  };

  const resend = $('resend');
  const resendWait = $('resend-wait');
  // countdown shows the wait before a resend is allowed. Its text changes
  // every second for the eye; the live region speaks twice, when it starts
  // and when it ends.
  let resendAt = 0;
  const announce = (msg) => { $('announce').textContent = msg; };
  const countdown = (secs) => {
    clearInterval(timer);
    resendAt = Date.now() + secs * 1000;
    announce(tr('You can ask for the code again in {n} seconds.', { n: secs }));
    const tick = () => {
      const left = Math.ceil((resendAt - Date.now()) / 1000);
      if (left <= 0) {
        clearInterval(timer);
        resend.disabled = false;
        resendWait.textContent = '';
        announce(tr('You can ask for the code again now.'));
        offerCall();
        return;
      }
      resend.disabled = true;
      resendWait.textContent = tr('You can ask for the code again in {n} s.', { n: left });
    };
    tick();
    timer = setInterval(tick, 1000);
  };

  // WebOTP: where the browser can read the code from the SMS (its last
  // line names this site), fill it in and check it, with no typing.
  let otpAbort = null;
  const listenForCode = () => {
    if (!('OTPCredential' in window) || !navigator.credentials) return;
    if (otpAbort) otpAbort.abort();
    otpAbort = new AbortController();
    navigator.credentials.get({ otp: { transport: ['sms'] }, signal: otpAbort.signal })
      .then((otp) => {
        if (!otp || !otp.code || steps.code.hidden) return;
        $('code').value = otp.code;
        $('form-code').requestSubmit();
      })
      .catch(() => { /* no SMS read, or another one asked for: type it */ });
  };

  // The step survives a reload (a phone coming back from its messages
  // app): it is kept in this tab's session storage, never beyond it.
  const saved = 'verifyd-step';
  const forget = () => { try { sessionStorage.removeItem(saved); } catch { /* private mode */ } };

  // What became of the text: polled gently while it may still change,
  // spoken once per change; "Call me instead" once a call can be asked for.
  const delivery = $('delivery');
  const callForm = $('form-call');
  let sid = delivery.dataset.sid, polls = 0, lastSaid = delivery.textContent;
  const said = { queued: 'Your text message is on its way.', sent: 'Your text message is on its way.',
    delivered: 'Your text message was delivered.',
    undelivered: 'Your text message could not be delivered. You can ask for a call now.' };
  said.failed = said.undelivered;
  const offerCall = () => { if (callForm) callForm.hidden = false; };
  const watchDelivery = async () => {
    if (!sid || steps.code.hidden || polls++ > 24) return;
    try {
      const res = await fetch('/api/delivery?verificationSid=' + encodeURIComponent(sid), { headers: { Accept: 'application/json' } });
      const d = res.ok ? await res.json() : {};
      const msg = d.channel === 'call' ? (d.status === 'undelivered' || d.status === 'failed' ? tr('We could not reach you by phone.') : '')
        : (said[d.status] ? tr(said[d.status]) : '');
      if (msg !== lastSaid) { delivery.textContent = lastSaid = msg; if (msg) announce(msg); }
      if (d.callAvailable) offerCall();
      if (d.channel !== 'call' && (d.status === 'undelivered' || d.status === 'failed')) {
        clearInterval(timer); // the failed text gave its resend back
        resend.disabled = false;
        resendWait.textContent = '';
      }
      if (['delivered', 'undelivered', 'failed'].includes(d.status)) return;
    } catch { /* offline for a moment: the next poll tries again */ }
    setTimeout(watchDelivery, 5000);
  };

  const toCode = (data, wait = cooldown) => {
    number = data.phoneNumber;
    if (data.verificationSid && data.verificationSid !== sid) {
      sid = data.verificationSid;
      polls = 0;
      delivery.textContent = lastSaid = '';
      if (callForm) callForm.hidden = true;
      setTimeout(watchDelivery, 2000);
    }
    shown = data.displayPhoneNumber || data.maskedPhoneNumber;
    $('sent-to').textContent = data.message; // the server's words: where the code went
    show('code');
    const code = $('code');
    code.value = '';
    setError(code, $('code-error'), '');
    code.focus();
    countdown(wait);
    listenForCode();
    try {
      sessionStorage.setItem(saved, JSON.stringify({ phoneNumber: data.phoneNumber, verificationSid: sid,
        displayPhoneNumber: shown, message: data.message, resendAt, until: Date.now() + 10 * 60 * 1000 }));
    } catch { /* private mode: no reload survival */ }
  };

  // A reload of step 2 with script shows step 2 again, with its wait.
  if (!steps.code.hidden && sid) setTimeout(watchDelivery, 1000);
  if (!steps.done.hidden || !steps.code.hidden) forget();
  else {
    try {
      const s = JSON.parse(sessionStorage.getItem(saved) || 'null');
      if (s && s.until > Date.now()) {
        toCode(s, Math.max(0, Math.ceil((s.resendAt - Date.now()) / 1000)));
      } else forget();
    } catch { forget(); }
  }

  $('form-phone').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const phone = $('phone');
    const btn = ev.submitter || ev.target.querySelector('button');
    const picked = document.querySelector('input[name=channel]:checked');
    const body = { phoneNumber: phone.value };
    if ($('country') && $('country').value) body.country = $('country').value;
    // The message in the page's language (the server's languages are all
    // Twilio's too).
    body.locale = document.documentElement.lang || undefined;
    if (picked) body.channel = picked.value;
    busy(btn, true);
    const data = await sendCode(body, () => { $('phone-error').textContent = tr('Checking…'); });
    busy(btn, false);
    if (!data.ok) {
      setError(phone, $('phone-error'), data.message, data.status);
      phone.focus();
      return;
    }
    setError(phone, $('phone-error'), '');
    toCode(data);
  });

  $('form-code').addEventListener('submit', async (ev) => {
    if (!number) return; // a server-rendered step 2: let the form post
    ev.preventDefault();
    const code = $('code');
    const btn = ev.submitter || ev.target.querySelector('button');
    if (btn.disabled) return; // already on its way (typed, then submitted)
    busy(btn, true);
    const body = { phoneNumber: number, code: code.value };
    if (app.dataset.nonce) body.nonce = app.dataset.nonce;
    const data = await post('/api/verify-otp', body);
    busy(btn, false);
    if (data.ok && data.verified) {
      clearInterval(timer);
      forget();
      document.title = tr('Phone number verified');
      $('title').textContent = tr('Phone number verified');
      $('done-number').textContent = tr('{number} is verified.', { number: shown });
      // The hand-off back to the app: the receipt goes by POST, never in
      // a URL.
      if ($('receipt') && data.receipt) $('receipt').value = data.receipt;
      show('done');
      if ($('continue')) $('continue').focus(); else steps.done.focus();
      return;
    }
    setError(code, $('code-error'), data.message, data.status);
    if ((data.status === 410 || data.code === 'too_many_attempts') && Date.now() >= resendAt) {
      // The code is over and a new one may be sent: offered at once. While
      // the cooldown runs it stays counting down, since a send now would be
      // refused.
      resend.focus();
    } else {
      code.focus();
    }
  });

  if (callForm) callForm.addEventListener('submit', async (ev) => {
    if (!number) return;
    ev.preventDefault();
    const data = await sendCode({ phoneNumber: number, channel: 'call' }, () => { delivery.textContent = tr('Checking…'); });
    if (!data.ok) { setError($('code'), $('code-error'), data.message, data.status); return; }
    toCode(data);
  });

  $('form-resend').addEventListener('submit', async (ev) => {
    if (!number) return;
    ev.preventDefault();
    resend.disabled = true;
    const data = await sendCode({ phoneNumber: number }, () => { resendWait.textContent = tr('Checking…'); });
    if (!data.ok) {
      resend.disabled = false;
      setError($('code'), $('code-error'), data.message, data.status);
      return;
    }
    toCode(data);
  });

  // The code is checked as soon as all its digits are in (any script's
  // digits count, as the server reads them).
  const codeLength = Number(app.dataset.codeLength) || 0;
  $('code').addEventListener('input', () => {
    const digits = ($('code').value.match(/\p{Nd}/gu) || []).length;
    if (number && codeLength && digits === codeLength) $('form-code').requestSubmit();
  });

  // The server's example is of the country it chose; another choice gets
  // a hint that fits any country (the list stays small without examples).
  if ($('country')) {
    $('country').addEventListener('change', () => {
      $('phone-hint').textContent = $('country').value
        ? tr('Type the number as you would dial it in that country, or with the country code.')
        : tr('Include your country code, for example {example}.', { example: '+14155552671' });
    });
  }

  $('change-number').addEventListener('click', (ev) => {
    ev.preventDefault();
    clearInterval(timer);
    forget();
    number = '';
    show('phone');
    $('phone').value = '';
    $('phone').focus();
  });
})();
