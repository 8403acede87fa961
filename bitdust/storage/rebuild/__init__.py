"""Rebuild: regenerating missing pieces from the others (service_rebuilding).

:mod:`.plan` finds what is missing and counts redundancy, :mod:`.block_job` rebuilds one
block, :mod:`.rebuilder` is the backup_rebuilder machine that runs the passes.
"""
