"""Which shard owns a company: a stable hash of the company id, as kube-state-metrics shards objects."""

from __future__ import annotations

import hashlib


def _hash64(company_id: str, *, salt: bytes = b"") -> int:
    # md5 is used for spreading, not for security; it is stable across processes and
    # Python versions, unlike the built-in hash() which is salted per process.
    digest = hashlib.md5(salt + company_id.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big")


def owns(company_id: str, shard: int, total_shards: int) -> bool:
    """True when shard ``shard`` of ``total_shards`` is responsible for ``company_id``.

    The first 8 bytes of the md5 of the company id, modulo the number of shards:
    every id belongs to exactly one shard, and the answer never changes between
    runs or replicas.
    """
    if total_shards <= 1:
        return True
    return _hash64(company_id) % total_shards == shard


def phase(company_id: str) -> float:
    """A stable number in [0, 1) per company, used to spread periodic work over an interval.

    It is salted so that it is independent of shard ownership: the companies of
    one shard still spread evenly over the whole interval.
    """
    return _hash64(company_id, salt=b"phase:") / float(1 << 64)
