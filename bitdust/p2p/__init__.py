"""Peer-to-peer layer above the gateway: p2p_connector, ping, private messages, broadcasts."""
