"""Moving signed packets between nodes.

- :mod:`bitdust.transport.packet`: the signed packet, its binary wire format and the
  length-prefixed frame codec that stream transports (TCP) use to cut packets apart.
"""
