"""Write the config's JSON Schema (``config.schema.json``) from the pydantic model.

Run ``python -m exporter.config.schema_export`` after changing the schema; a
test fails while the committed file differs from the generated one. Editors
that understand JSON Schema (e.g. with ``# yaml-language-server: $schema=...``)
then complete and check config files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporter.config.schema import Config

SCHEMA_FILE_NAME = "config.schema.json"
SCHEMA_ID = "https://github.com/codat-exporter/codat-exporter/config.schema.json"


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a config file."""
    schema = Config.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "codat-exporter configuration",
        **{key: value for key, value in schema.items() if key != "title"},
    }


def render_schema() -> str:
    """The schema as the exact text committed in ``config.schema.json``."""
    return json.dumps(config_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schema to ``--output`` (default ``config.schema.json`` in the current directory)."""
    parser = argparse.ArgumentParser(description="Write the JSON Schema of the exporter's config file.")
    parser.add_argument("--output", type=Path, default=Path(SCHEMA_FILE_NAME), help="'-' for stdout")
    args = parser.parse_args(argv)
    text = render_schema()
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
