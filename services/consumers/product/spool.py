"""A job's feed rows, kept on disk until its enumeration ends, so a job goes to Rithum as one file.

Rithum picks feed files up within an hour and limits uploads per hour, so a job should not send a
file per page. Rows are kept as JSON lines in a temporary file (a 100k-item job would be ~100 MB in
memory), each SKU once, in the order they came: parents before their children.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime

from services.consumers.product.transform import Kind, RithumProduct


@dataclass(slots=True)
class Spooled:
    """A product to write, with what the write-back needs: the Acumatica entity and the ID it holds now."""

    product: RithumProduct
    entity: str
    current_id: str
    modified: datetime | None
    lost: bool = False  # listed by the connector, gone from Rithum (a full job's check): created again
    forced: bool = False  # unchanged, sent because the sync was forced


class FeedSpool:
    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.skus: set[str] = set()
        self.attribute_slots = 0

    def add(self, entry: Spooled) -> None:
        product = entry.product
        if product.sku in self.skus:  # a family's parent comes again with each page of its variants
            return
        self.skus.add(product.sku)
        self.attribute_slots = max(self.attribute_slots, len(product.body.get("Attributes", ())))
        row = {
            "product": asdict(product),
            "entity": entry.entity,
            "current_id": entry.current_id,
            "modified": entry.modified.isoformat() if entry.modified else None,
            "lost": entry.lost,
            "forced": entry.forced,
        }
        self._file.seek(0, 2)
        self._file.write(json.dumps(row, separators=(",", ":")) + "\n")

    def __len__(self) -> int:
        return len(self.skus)

    def __iter__(self) -> Iterator[Spooled]:
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            row = json.loads(line)
            data = row["product"]
            product = RithumProduct(
                sku=data["sku"],
                kind=Kind(data["kind"]),
                body=data["body"],
                parent_sku=data["parent_sku"],
                component_skus=tuple(data["component_skus"]),
                content_hash=data["content_hash"],
            )
            modified = datetime.fromisoformat(row["modified"]) if row["modified"] else None
            yield Spooled(product, row["entity"], row["current_id"], modified, row["lost"], row["forced"])

    def close(self) -> None:
        self._file.close()
