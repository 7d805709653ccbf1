"""The HTTP edge: decoding, envelopes, authentication, idempotency, errors in Chargebee's format,
and the dependencies route handlers get. Slices' routers build on it; it imports no slice's service."""
