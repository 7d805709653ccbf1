from tests.fakes.stripe_api import fake_stripe  # noqa: F401
from tests.support.receiver import receiver  # noqa: F401
