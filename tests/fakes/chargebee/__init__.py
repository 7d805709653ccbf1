"""A stateful fake of the Chargebee Billing API (see ``tests/fakes/chargebee_api.py``)."""
