"""Stateful fakes of the billing providers' APIs, driven by their unmodified SDKs in tests."""
