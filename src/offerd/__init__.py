"""offerd: offers decisioning and fulfillment, wire-compatible with Chargebee Growth's Offers API."""

__version__ = "0.1.0"
