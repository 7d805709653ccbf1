"""Stateful fakes of the billing providers' APIs (Stripe, Chargebee Billing): real HTTP servers on
127.0.0.1, driven by the unmodified official SDKs."""
