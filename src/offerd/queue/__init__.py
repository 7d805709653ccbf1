"""The job queue on PostgreSQL (jobs), the worker loop (worker), and the wiring of job kinds and
periodic sweeps for server and worker processes (runtime)."""
