"""The shared ground every slice may use: clock, ids, URLs, money, templating. Imports no slice."""
