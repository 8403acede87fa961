"""The DHT: a kademlia node on the reactor's loop, signed records, nicknames, and the
availability records supplier lookup reads."""
