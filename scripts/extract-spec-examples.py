#!/usr/bin/env python3
"""Regenerate fixtures/meta/ from Meta's OpenAPI spec (MIT licensed, ../shared/meta/).

Writes one JSON file per example: the 16 webhook POST bodies and the 50 send-message
request bodies, named after the example's title. Run from the repository root:
    python3 scripts/extract-spec-examples.py [path/to/business-messaging-api_v23.0.yaml]
"""
import json
import pathlib
import re
import sys

import yaml

spec_path = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/meta/business-messaging-api_v23.0.yaml")
spec = yaml.safe_load(spec_path.read_text())
out = pathlib.Path("fixtures/meta")


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def dump(kind: str, examples: dict) -> None:
    folder = out / kind
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    for title, example in examples.items():
        (folder / f"{slug(title)}.json").write_text(json.dumps(example["value"], indent=2, ensure_ascii=False) + "\n")
    print(f"{kind}: {len(examples)} examples")


paths = spec["paths"]
dump("webhooks", paths["/whatsapp/webhooks"]["post"]["requestBody"]["content"]["application/json"]["examples"])
dump("send", paths["/{Version}/{Phone-Number-ID}/messages"]["post"]["requestBody"]["content"]["application/json"]["examples"])
