"""The web console at ``/console``: server-rendered pages over the same services the admin API
calls, for people (console users with roles) instead of the admin token."""
