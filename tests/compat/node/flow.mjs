// Drives offerd through the official, unmodified `chargebee` npm package (tests/compat).
//
//   node flow.mjs <scenario>
//
// Parameters come from the environment:
//   OFFERD_COMPAT_PORT                 offerd's port on 127.0.0.1 ({site}.grow.localhost must resolve there)
//   OFFERD_COMPAT_SITE                 the site (the SDK builds {site}.grow.localhost)
//   OFFERD_COMPAT_FULL_ACCESS_KEY      a full_access key of that site
//   OFFERD_COMPAT_PUBLISHABLE_KEY      a publishable key of that site ("flow" only)
//
// Scenarios:
//   flow        personalized_offers -> offer_events (viewed) -> offer_fulfillments (talk, with an
//               idempotency key, replayed, then reused with another body) -> retrieve -> update
//               (completed) -> retrieve; an unknown personalized offer; a publishable key retrieving;
//               accepting the billing_update option of a second personalized offer.
//   no_content  personalized_offers -> offer_events on a site answering offer_events with 204.
//
// Prints one JSON object: for each step either
//   {"ok": true, "status": <http status>, "replayed": <isIdempotencyReplayed>, "headers": {...}, "body": {...}}
// or {"ok": false, "error": {...what the SDK rejected with...}}.
// The assertions live in the pytest tests; this script only records what the SDK did.

import { randomUUID } from 'node:crypto';
import Chargebee from 'chargebee';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

function client(site, apiKey) {
  return new Chargebee({
    site,
    apiKey,
    hostSuffix: '.localhost',
    protocol: 'http',
    port: Number(required('OFFERD_COMPAT_PORT')),
  });
}

function describeError(err) {
  if (err === null || typeof err !== 'object') {
    return { thrown: String(err) };
  }
  // For an API error the SDK rejects with the parsed error body plus http_status_code and headers
  // (coreCommon.js handleResponse); a body it cannot parse becomes a ChargebeeError.
  const out = { class: err.constructor?.name ?? null };
  for (const key of [
    'message',
    'type',
    'api_error_code',
    'param',
    'error_code',
    'http_status_code',
    'http_code',
    'headers',
  ]) {
    if (err[key] !== undefined) {
      out[key] = err[key];
    }
  }
  if (err.detail !== undefined) {
    out.detail = String(err.detail);
  }
  if (err.cause !== undefined) {
    out.cause = String(err.cause?.message ?? err.cause);
  }
  return out;
}

async function step(call) {
  try {
    const res = await call();
    const { headers, httpStatusCode, isIdempotencyReplayed, ...body } = res;
    return { ok: true, status: httpStatusCode, replayed: isIdempotencyReplayed, headers, body };
  } catch (err) {
    return { ok: false, error: describeError(err) };
  }
}

const firstOffer = (result) => (result.ok ? result.body.personalized_offers?.[0] : undefined);
const fulfillmentId = (result) => (result.ok ? result.body.offer_fulfillment?.id : undefined);

const ASK = {
  customer_id: 'cus_1',
  subscription_id: 'sub_1',
  request_context: { locale: 'en-US', timezone: 'Europe/Berlin', user_agent: 'offerd-compat' },
  custom: { viewCount: 6 },
};

async function flow() {
  const site = required('OFFERD_COMPAT_SITE');
  const chargebee = client(site, required('OFFERD_COMPAT_FULL_ACCESS_KEY'));
  const publishable = client(site, required('OFFERD_COMPAT_PUBLISHABLE_KEY'));
  const r = {};

  r.offers = await step(() => chargebee.personalizedOffer.personalizedOffers(ASK));
  const po = firstOffer(r.offers);
  if (po) {
    r.viewed = await step(() =>
      chargebee.offerEvent.offerEvents({ personalized_offer_id: po.id, type: 'viewed' }),
    );

    const key = randomUUID();
    const accept = (option_id) =>
      chargebee.offerFulfillment.offerFulfillments(
        { personalized_offer_id: po.id, option_id },
        { 'chargebee-idempotency-key': key },
      );
    r.accepted = await step(() => accept('talk'));
    r.replayed = await step(() => accept('talk'));
    r.key_reused = await step(() => accept('gift'));

    const id = fulfillmentId(r.accepted);
    if (id) {
      r.retrieved = await step(() => chargebee.offerFulfillment.offerFulfillmentsGet(id));
      r.updated = await step(() =>
        chargebee.offerFulfillment.offerFulfillmentsUpdate(id, { id, status: 'completed' }),
      );
      r.retrieved_after = await step(() => chargebee.offerFulfillment.offerFulfillmentsGet(id));
      r.forbidden = await step(() => publishable.offerFulfillment.offerFulfillmentsGet(id));
    }
  }

  r.unknown = await step(() =>
    chargebee.offerFulfillment.offerFulfillments({
      personalized_offer_id: 'po_does_not_exist',
      option_id: 'talk',
    }),
  );

  r.second_offers = await step(() => chargebee.personalizedOffer.personalizedOffers(ASK));
  const second = firstOffer(r.second_offers);
  if (second) {
    r.discount = await step(() =>
      chargebee.offerFulfillment.offerFulfillments({
        personalized_offer_id: second.id,
        option_id: 'discount',
      }),
    );
  }
  return r;
}

async function noContent() {
  const chargebee = client(
    required('OFFERD_COMPAT_SITE'),
    required('OFFERD_COMPAT_FULL_ACCESS_KEY'),
  );
  const r = {};
  r.offers = await step(() => chargebee.personalizedOffer.personalizedOffers(ASK));
  const po = firstOffer(r.offers);
  if (po) {
    r.viewed = await step(() =>
      chargebee.offerEvent.offerEvents({ personalized_offer_id: po.id, type: 'viewed' }),
    );
  }
  return r;
}

const scenarios = { flow, no_content: noContent };

async function main() {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) {
    throw new Error(`usage: node flow.mjs <${Object.keys(scenarios).join('|')}>, got ${name}`);
  }
  process.stdout.write(`${JSON.stringify(await scenario())}\n`);
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  process.exit(1);
});
