"""Codat company tags as labels of ``codat_company_info``: names, bounds and rendering (pure).

Like kube-state-metrics' ``--metric-labels-allowlist``, only the tags an operator lists become
labels, so a company's free-form tags can never multiply series or label names. A tag ``team``
becomes the label ``tag_team``: every character outside ``[A-Za-z0-9_]`` turns into ``_``, and the
``tag_`` prefix keeps the name valid and apart from the family's own labels (``company_id``,
``company_name``, ``platform``, ``tags``) and from the reserved ``__`` names. A company without a
listed tag (or with an empty value) simply has no such label, which is what Prometheus makes of an
empty label anyway. Values longer than ``MAX_TAG_VALUE_LENGTH`` characters are cut to that length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from exporter.exposition.textformat import escape_label_value

LABEL_PREFIX: Final = "tag_"
MAX_TAG_LABELS: Final = 10
"""At most this many tags may be listed: each one is a label on every company's info series."""
MAX_TAG_NAME_LENGTH: Final = 64
"""Longest tag name (in characters) that may be listed."""
MAX_TAG_VALUE_LENGTH: Final = 128
"""Tag values are cut to this many characters (Unicode code points) before they become labels."""

_INVALID: Final = re.compile(r"[^A-Za-z0-9_]")
_MEANINGFUL: Final = re.compile(r"[A-Za-z0-9]")

TagLabels = tuple[tuple[str, str], ...]
"""``(tag name, label name)`` for each listed tag, in the order listed."""


class TagLabelError(ValueError):
    """A tag allow-list that cannot be used; the message is one line naming the tag."""


def tag_label_name(tag: str) -> str:
    """The label name of Codat tag ``tag``: ``tag_`` + the name with each character outside
    ``[A-Za-z0-9_]`` replaced by ``_`` (``cost-centre`` -> ``tag_cost_centre``)."""
    return LABEL_PREFIX + _INVALID.sub("_", tag)


def check_tag_name(tag: str) -> str:
    """``tag`` if it may be listed, else ``TagLabelError`` saying why (empty, too long, no letter)."""
    if not tag:
        raise TagLabelError("must be a non-empty tag name")
    if len(tag) > MAX_TAG_NAME_LENGTH:
        raise TagLabelError(f"tag name is {len(tag)} characters; at most {MAX_TAG_NAME_LENGTH} are allowed")
    if not _MEANINGFUL.search(tag):
        raise TagLabelError(f"tag name {tag!r} has no ASCII letter or digit to name a label after")
    return tag


def tag_labels(tags: Sequence[str]) -> TagLabels:
    """The ``(tag, label name)`` pairs of an allow-list, checked: at most ``MAX_TAG_LABELS`` tags,
    each a valid name, no tag twice and no two tags that become the same label name."""
    if len(tags) > MAX_TAG_LABELS:
        raise TagLabelError(f"{len(tags)} tags listed; at most {MAX_TAG_LABELS} may become labels")
    seen: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for tag in tags:
        check_tag_name(tag)
        label = tag_label_name(tag)
        if label in seen:
            first = seen[label]
            if first == tag:
                raise TagLabelError(f"tag {tag!r} is listed twice")
            raise TagLabelError(f"tags {first!r} and {tag!r} would both become label {label}")
        seen[label] = tag
        pairs.append((tag, label))
    return tuple(pairs)


def tag_label_value(value: str) -> str:
    """A tag value as a label value: cut to ``MAX_TAG_VALUE_LENGTH`` characters, not yet escaped."""
    return value[:MAX_TAG_VALUE_LENGTH]


def render_tag_labels(tags: Mapping[str, str], labels: TagLabels) -> str:
    """``,tag_x="…"`` for each listed tag the company has with a non-empty value, escaped.

    Ready to append to a label set; ``""`` when the company has none of the listed tags.
    """
    parts = []
    for tag, label in labels:
        value = tags.get(tag)
        if value:
            parts.append(f',{label}="{escape_label_value(tag_label_value(value))}"')
    return "".join(parts)
