"""Stripe as a billing provider: the subscription mapping and the exactly-once apply path."""
