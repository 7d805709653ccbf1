"""The parts of the fake Stripe API (see tests/fakes/stripe_api.py for the entry point)."""
