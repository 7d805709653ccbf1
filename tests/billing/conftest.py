from tests.fakes.stripe_api import fake_stripe  # noqa: F401
