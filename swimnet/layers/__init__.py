"""The engine's layers above membership, each behind the one `Layer` contract
(`contract.py`): keys (cluster-wide keyring operations) and tables (replicated
network-scoped tables); topology plugs into membership as its ping delegate and peer
selection. Completion events (`events.py`) announce what callers wait for.
"""

from swimnet.layers.events import KeyOpFinished, SyncFinished

__all__ = ["KeyOpFinished", "SyncFinished"]
