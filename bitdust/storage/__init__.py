"""Backups: identifiers, erasure coding and the encode/decode pipeline.

Everything below this package that touches file contents is blocking code meant to run
in a thread pool (``deferToThread``); the automats that drive backups and restores call
into it and never do heavy work on the reactor thread.
"""
