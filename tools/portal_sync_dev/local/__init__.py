"""`make run`'s system on this machine: runner (run.py, system.py) and the stand-ins it wires
together (embedded PostgreSQL, moto, the loopback HTTP adapter, the queue consumer and schedule,
the Dataverse stand-in, the demo seed)."""
