"""The billing mirror: a remote provider's customers, subscriptions, prices/plans and coupons,
kept in the ledger's own tables so that decisioning reads the same rows, at the same speed,
whichever provider a site has.

- ``objects``: what a provider's object becomes (typed rows), and the ``MirrorSource`` protocol
  each provider implements (a page of a kind; one object by id).
- ``service``: writing what was read, ordered by read time; re-reading one object (webhooks,
  on-demand fetch); the state after a change offerd made.
- ``sync``: the initial import, page by page, resumable.
- ``webhooks``: which objects a provider's event names (pure).

Webhooks are hints, not truth (DESIGN.md §7): each one re-reads the object it names, and every
write carries the database-clock time its read was *started*; a row only moves forward in that
time (``billing/mirror_store.py``). Reads started later see the provider's later state, so late,
duplicated and reordered events, a sync running alongside them and offerd's own changes all
converge on the provider's latest state.
"""
