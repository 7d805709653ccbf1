"""Chargebee Billing through the official ``chargebee`` SDK (3.x): the provider (the eight
actions, exactly once through ``billing.remote``), the mirror's source, the pure mapping."""
