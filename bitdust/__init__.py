"""BitDust: a peer-to-peer, encrypted, erasure-coded backup network.

One daemon per user; see ``bitdust.node.Node`` for how the parts are wired.
"""

__version__ = "0.1.0"
