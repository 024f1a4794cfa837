"""Background jobs: the Dramatiq broker, the actors, and the outbox relay that feeds them.

    request ─ one transaction ─▶ reports row + outbox row ─ relay ─▶ broker ─▶ worker ─▶ result

Run a worker with Dramatiq's own CLI (`dramatiq workers.actors`) and the relay with
`python -m workers.relay`; `make run` starts both.
"""
