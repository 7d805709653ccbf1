"""The fakes' fixtures, for the fakes' own tests (other test packages import them the same way)."""

from tests.fakes.chargebee_api import chargebee_fake, chargebee_sdk, localhost_dns  # noqa: F401
