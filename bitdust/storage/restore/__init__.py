"""Restore: pieces back from the suppliers into files (service_restores), and the parts
rebuild shares with it.

:mod:`.target` finds what to restore and where, :mod:`.share_fetch` gets the shares of a
block (Data first, Parity for the missing or bad), :mod:`.verify` decodes a block and
names the bad shares, :mod:`.worker` is the restore_worker machine of one job and
:mod:`.jobs` keeps a node's jobs.
"""
