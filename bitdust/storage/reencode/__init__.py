"""Re-encoding stored versions when ``services/customer/suppliers-number`` changes.

The original BitDust wiped every backup when the number of suppliers changed. Here the
old versions are coded again with the new ``ecc/NxN`` map in the background, and no
version ever has less than its old redundancy on the way:

* **Suppliers.** Growing (2 -> 4) adds empty positions, which fire_hire fills. Shrinking
  (4 -> 2) keeps the suppliers past the new N as *retained* positions
  (:class:`bitdust.storage.customer.suppliers.SupplierList`): still connected, not fired,
  not released, until no version in the catalog is coded with a map that reaches them;
  then they are released (CancelService, which also makes them drop our data).
* **Piece names (the decision).** Old and new pieces must coexist on a supplier that has a
  position in both maps (``0-0-Data`` exists in every map). A version keeps its backup ID
  (catalog, API and the AEAD tag of every block all name it), and each coding of it is a
  numbered *generation*: generation 0 is what the backup job wrote, under the backup ID;
  generation ``g >= 1`` is stored under
  ``999999999998/<g>/<pathID>/<version>/<block>-<i>-Data|Parity``
  (:func:`bitdust.storage.ids.storage_id`). Those are ordinary piece IDs for a supplier,
  a folder of their own (one DeleteBackup removes a generation), and a new generation is
  always one above every generation the version ever had, so a leftover can never pass
  for a new piece. Blocks are not sealed again: the verified sealed bytes of each block
  are zfec-coded with the new map, so the AEAD tags stay valid for the backup ID.
* **Switch rule.** A version's catalog entry (``ecc``, ``generation``) names the coding
  restores, rebuilds and the monitor use. The re-encoding (``reencode``: target map,
  generation, blocks done) is recorded first; only when every new piece of every block
  is acknowledged does :meth:`bitdust.storage.catalog.tree.Catalog.switch_reencoded`
  swap the entry in one change, saved atomically; the old generation becomes *retired*
  and its pieces are deleted afterwards -- never while a restore reads that version.
* **Restarts.** Everything above is in the catalog (``reencode.done`` advances as blocks
  are acknowledged) and in ``suppliers.json`` (retained positions), so a restarted
  daemon goes on with the versions not switched yet, from the first block not done.

:mod:`.plan` is the pure logic (what needs re-encoding, which suppliers are still
needed, when a version may switch); :mod:`.reencoder` runs the passes; :mod:`.env`
connects it to the node (it runs inside service_backups).
"""
