"""A Chaos Toolkit extension for the local stack: actions and probes over
`devstack.faults` (signals, database), finding their targets through `.stack/state.json`.

    chaos run loadtests/chaos/kill-random-db-connection.json   # against `make run`

Every activity takes `stack_dir` (default: `$STACK_DIR`, else `.stack` in the checkout).
"""
