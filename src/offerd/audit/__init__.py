"""The audit log: every change a person made, through the console or the admin API."""
