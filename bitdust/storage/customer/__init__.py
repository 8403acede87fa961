"""The customer side of the storage market: the supplier list, one supplier_connector per
supplier, the supplier_finder and fire_hire machines. Services wire them to the node
(:mod:`bitdust.services.customer`, :mod:`bitdust.services.employer`)."""
