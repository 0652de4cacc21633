#!/usr/bin/env node
/*
 * Send a realistic event mix to TrackLayer through the real RudderStack Node SDK.
 *
 *   node send_events.js --host URL --write-key KEY --prefix STR --count N [--no-gzip] [--deadline S]
 *
 * Uses @rudderstack/rudder-sdk-node (exact version pinned in package.json and
 * package-lock.json; install with `npm ci` in this folder). The SDK POSTs
 * `{host}/v1/batch` with HTTP Basic (`writeKey:`) and, by default, a gzipped
 * body (Content-Encoding: gzip). `--gzip` is accepted (it is the default);
 * `--no-gzip` sends plain JSON.
 *
 * Exit status: 0 only if every batch was accepted (2xx) and the SDK reported
 * no error; 1 if the SDK reported an error, 2 on bad arguments, 3 if the run
 * did not finish within --deadline seconds (default 9). The client gives up
 * fast (2 retries with ~0.1-0.4 s backoff, 3 s request timeout), so a failing
 * or absent server makes this exit non-zero in well under 10 s.
 * stdout gets exactly one JSON line: {"sent": <messages accepted>, "errors": <error count>}.
 *
 * Deterministic event scheme: identical to tests/sdk/python/send_events.py
 * (see the docstring there). For i in 0..N-1 with P = --prefix:
 *   messageId `${P}-${i}`, type KINDS[i % 6] (identify, track, page, screen, group, alias),
 *   userId `${P}-user-${i}`, anonymousId `${P}-anon-${i}` (not on alias),
 *   email `${P}.buyer${i}@example.com`, phone `+1 415 555 ${1000 + i % 9000}`,
 *   firstName "Zebulon", lastName `Quackenbush${P}`,
 *   address {street `${100 + i} Duckpond Lane`, city Springfield, state OR, postal_code 97477, country US},
 *   birthday 1990-04-17, gender male; track "Order Completed" with order_id `${P}-order-${i}`,
 *   value = revenue = i + 25.5 USD; context ip `203.0.113.${i % 254 + 1}`, userAgent, page.url,
 *   consent.categoryPreferences {advertising: true, analytics: true}; context.traits.email on track.
 * Differences that come from the SDK itself, not from this script: identify's
 * traits are also copied to context.traits, and the very first message is
 * flushed alone in its own request (the SDK flushes on the first enqueue).
 */
'use strict';

const Analytics = require('@rudderstack/rudder-sdk-node');

const KINDS = ['identify', 'track', 'page', 'screen', 'group', 'alias'];
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) TrackLayerSDKTest/1.0';

function usage(msg) {
  process.stderr.write(
    `send_events.js: ${msg}\n` +
      'usage: node send_events.js --host URL --write-key KEY --prefix STR --count N [--no-gzip] [--deadline S]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const out = { gzip: true, deadline: 9 };
  for (let k = 0; k < argv.length; k += 1) {
    const a = argv[k];
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(0, eq) : a;
    const value = () => {
      if (eq >= 0) return a.slice(eq + 1);
      k += 1;
      if (k >= argv.length) usage(`${name} needs a value`);
      return argv[k];
    };
    switch (name) {
      case '--host': out.host = value(); break;
      case '--write-key': out.writeKey = value(); break;
      case '--prefix': out.prefix = value(); break;
      case '--count': out.count = Number(value()); break;
      case '--deadline': out.deadline = Number(value()); break;
      case '--gzip': out.gzip = true; break;
      case '--no-gzip': out.gzip = false; break;
      case '-h': case '--help': usage('help');
      // falls through (usage exits)
      default: usage(`unknown argument ${a}`);
    }
  }
  for (const k of ['host', 'writeKey', 'prefix']) if (!out[k]) usage(`--${k === 'writeKey' ? 'write-key' : k} is required`);
  if (!Number.isInteger(out.count) || out.count < 0) usage('--count must be an integer >= 0');
  if (!(out.deadline > 0)) usage('--deadline must be > 0');
  return out;
}

function pii(p, i) {
  return {
    email: `${p}.buyer${i}@example.com`,
    phone: `+1 415 555 ${1000 + (i % 9000)}`,
    firstName: 'Zebulon',
    lastName: `Quackenbush${p}`,
    address: {
      street: `${100 + i} Duckpond Lane`,
      city: 'Springfield',
      state: 'OR',
      postal_code: '97477',
      country: 'US',
    },
    birthday: '1990-04-17',
    gender: 'male',
  };
}

const pageUrl = (p, i) => `https://shop.example.com/checkout?ref=${p}-${i}`;

function context(p, i, withEmail) {
  const ctx = {
    ip: `203.0.113.${(i % 254) + 1}`,
    userAgent: USER_AGENT,
    page: { url: pageUrl(p, i), path: '/checkout', title: 'Checkout' },
    consent: { categoryPreferences: { advertising: true, analytics: true } },
  };
  if (withEmail) ctx.traits = { email: pii(p, i).email };
  return ctx;
}

function sendOne(client, p, i, cb) {
  const kind = KINDS[i % KINDS.length];
  const userId = `${p}-user-${i}`;
  const anonymousId = `${p}-anon-${i}`;
  const base = { messageId: `${p}-${i}`, userId, context: context(p, i, kind === 'track') };
  const amount = i + 25.5;
  switch (kind) {
    case 'identify':
      client.identify({ ...base, anonymousId, traits: pii(p, i) }, cb);
      break;
    case 'track':
      client.track(
        {
          ...base,
          anonymousId,
          event: 'Order Completed',
          properties: {
            order_id: `${p}-order-${i}`,
            value: amount,
            revenue: amount,
            currency: 'USD',
            products: [
              {
                product_id: `${p}-sku-${i}`,
                sku: `SKU-${i}`,
                name: 'Rubber Duck',
                category: 'Bath',
                price: amount,
                quantity: 1,
              },
            ],
          },
        },
        cb,
      );
      break;
    case 'page':
      client.page(
        {
          ...base,
          anonymousId,
          category: 'Shop',
          name: 'Checkout',
          properties: {
            url: pageUrl(p, i),
            path: '/checkout',
            title: 'Checkout',
            referrer: 'https://search.example.com/',
          },
        },
        cb,
      );
      break;
    case 'screen':
      client.screen({ ...base, anonymousId, name: 'Cart', properties: { cart_size: 1 } }, cb);
      break;
    case 'group':
      client.group(
        {
          ...base,
          anonymousId,
          groupId: `${p}-group-${i}`,
          traits: { name: `Acme ${p}`, plan: 'enterprise', employees: 42 },
        },
        cb,
      );
      break;
    default: // alias
      client.alias({ ...base, previousId: anonymousId }, cb);
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let errors = 0;
  let failed = 0;
  let accepted = 0;
  const report = (sent, errs) => process.stdout.write(`${JSON.stringify({ sent, errors: errs })}\n`);

  const watchdog = setTimeout(() => {
    process.stderr.write(`send_events.js: not done after ${args.deadline}s, giving up\n`);
    report(accepted, errors + 1);
    process.exit(3);
  }, args.deadline * 1000);

  const client = new Analytics(args.writeKey, {
    dataPlaneUrl: args.host,
    gzip: args.gzip,
    flushAt: 100,
    flushInterval: 200,
    retryCount: 2,
    timeout: 3000,
    logLevel: 'error',
    // Called once per failed request (after retries); the per-message callbacks get the error too.
    errorHandler: (err) => {
      errors += 1;
      const status = err && err.response ? `HTTP ${err.response.status}` : err && (err.code || err.message);
      process.stderr.write(`send_events.js: SDK error: ${status}\n`);
    },
  });

  // Every message's callback fires once its request settles (success or final error).
  let allSettled;
  const settled = new Promise((resolve) => { allSettled = resolve; });
  const perMessage = (err) => {
    if (err) failed += 1;
    else accepted += 1;
    if (accepted + failed >= args.count) allSettled();
  };
  if (args.count === 0) allSettled();

  for (let i = 0; i < args.count; i += 1) {
    try {
      sendOne(client, args.prefix, i, perMessage);
    } catch (e) {
      // validation errors thrown synchronously by the SDK
      errors += 1;
      failed += 1;
      process.stderr.write(`send_events.js: SDK rejected message ${i}: ${e.message}\n`);
    }
    // Let the SDK's own flushes go out while we enqueue, as in a real server. (Its
    // enqueue() re-serialises the whole queue each time, so a queue that only grows
    // makes a large --count quadratic.)
    if (i % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
  }

  // flush() sends at most flushAt messages per call. The SDK also flushes by itself
  // (first message, every flushAt messages), and its pendingFlush tracks only the
  // latest request, so completion is judged by the per-message callbacks instead.
  while (client.queue.length > 0) {
    await client.flush();
  }
  await settled; // the watchdog ends the run if some request never settles

  clearTimeout(watchdog);
  report(accepted, errors);
  process.exit(errors === 0 ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`send_events.js: ${e && e.stack ? e.stack : e}\n`);
  process.stdout.write(`${JSON.stringify({ sent: 0, errors: 1 })}\n`);
  process.exit(1);
});
