"""Entry points: `lta COMMAND` and `python -m lta.cli.<command>`.

Each command module parses flags and calls a job; `main` dispatches,
`runner` gives every command the same errors and exit codes, `gin_flags`
parses and checks gin files and bindings, `gin_registry` lists the modules
that define configurables.
"""
