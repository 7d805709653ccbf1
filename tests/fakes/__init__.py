"""Fakes of third-party APIs that offerd talks to through their official SDKs (real HTTP servers)."""
