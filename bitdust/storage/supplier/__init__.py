"""The supplier side of the storage market: what a node does with the space it donates.

- :mod:`.disk`: blocking file operations on ``<home>/customers/`` (run in the thread pool);
- :mod:`.contracts`: who our customers are and what they were granted, kept on disk;
- :mod:`.store`: quotas, the in-memory index of held pieces, one queue per customer;
- :mod:`.handlers`: gateway handlers turning packets (see :mod:`bitdust.storage.market`)
  into store operations and answers;
- :mod:`.presence`: which customers answer (``customers_ping``);
- :mod:`.announce`: the availability record in the DHT;
- :mod:`.patrol`: rejecting idle or over-quota customers.
"""
