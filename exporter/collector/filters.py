"""Which companies and data types this exporter watches: the selection globs of the config."""

from __future__ import annotations

from collections.abc import Sequence

from exporter.codat.models import Company
from exporter.common.globs import matches_any


class DataTypeFilter:
    """Data-type allow/deny globs: allowed when it matches an include (or there are none) and no exclude."""

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        """Keep the glob lists."""
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def __call__(self, data_type: str) -> bool:
        """True when ``data_type`` is exported."""
        if self.include and not matches_any(data_type, self.include):
            return False
        return not matches_any(data_type, self.exclude)


class CompanyFilter:
    """Company include/exclude globs (on id or name) and an optional explicit id list."""

    def __init__(
        self, ids: Sequence[str] = (), include: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> None:
        """Keep the selection."""
        self.ids = frozenset(ids)
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def __call__(self, company: Company) -> bool:
        """True when ``company`` is selected."""
        if self.ids and company.id not in self.ids:
            return False
        names = (company.id, company.name)
        if self.include and not any(matches_any(n, self.include) for n in names):
            return False
        return not any(matches_any(n, self.exclude) for n in names)
