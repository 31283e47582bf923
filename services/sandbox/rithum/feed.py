"""Inventory feed files as dropped on the FTP server: tab-delimited UTF-8, first row a header, one
product per row, applied in file order through the catalogue's own validation.

Plain tab-separated lines, no quoting: a value cannot hold a tab or a line break. Only columns of
Rithum's default layout are accepted; any other column (e.g. a made-up `Bundle Components`) rejects the
whole file, as Rithum rejects a file with a bad header. Bundles are made through the REST API.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .catalog import UPDATE_TYPES, Catalog, QuantityUpdate
from .errors import ApiError

SKU_COLUMN = "Inventory Number"
TEXT_COLUMNS = {
    "Auction Title": "Title",
    "Classification": "Classification",
    "Relationship Name": "RelationshipName",
    "Brand": "Brand",
    "Manufacturer": "Manufacturer",
    "Description": "Description",
    "Short Description": "ShortDescription",
    "Condition": "Condition",
    "Warranty": "Warranty",
    "UPC": "UPC",
    "EAN": "EAN",
    "ISBN": "ISBN",
    "MPN": "MPN",
    "ASIN": "ASIN",
    "Supplier Code": "SupplierCode",
    "Warehouse Location": "WarehouseLocation",
}
NUMBER_COLUMNS = {
    "Retail Price": "RetailPrice",
    "Buy It Now Price": "BuyItNowPrice",
    "Seller Cost": "Cost",
    "Starting Bid": "StartingPrice",
    "Reserve": "ReservePrice",
    "Second Chance Offer Price": "SecondChancePrice",
    "Product Margin": "Margin",
    "Weight": "Weight",
    "Height": "Height",
    "Length": "Length",
    "Width": "Width",
}
SPECIAL_COLUMNS = {
    SKU_COLUMN,
    "Variation Parent SKU",
    "Quantity",
    "Quantity Update Type",
    "DC Quantity",
    "Labels",
}
PARENT_MARKER = "parent"
DEFAULT_UPDATE_TYPE = "Absolute"
_ATTRIBUTE = re.compile(r"Attribute(\d+)(Name|Value)\Z")


class RowError(Exception):
    """A row the sandbox refuses; its message goes into the result file."""


@dataclass
class Result:
    line: int
    sku: str
    error: str | None  # None = Success


class FileError(Exception):
    """The whole file is unusable: one file-level error in the result file."""


def _number(column: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RowError(f"{column} '{text}' is not a number.") from None


def _integer(column: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RowError(f"{column} '{text}' is not a whole number.") from None


class _RowReader:
    """Turns the cells of one row into a product body and an optional quantity update."""

    def __init__(self, header: list[str], catalog: Catalog) -> None:
        self.catalog = catalog
        self.index = {name: i for i, name in enumerate(header)}
        if SKU_COLUMN not in self.index:
            raise FileError(f"The header has no '{SKU_COLUMN}' column.")
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise FileError(f"Duplicate columns in the header: {', '.join(duplicated)}.")
        attributes: dict[int, dict[str, int]] = {}
        unknown = []
        for i, name in enumerate(header):
            found = _ATTRIBUTE.match(name)
            if found:
                attributes.setdefault(int(found.group(1)), {})[found.group(2)] = i
            elif name not in TEXT_COLUMNS and name not in NUMBER_COLUMNS and name not in SPECIAL_COLUMNS:
                unknown.append(name)
        if unknown:
            raise FileError(f"Unknown columns in the header: {', '.join(repr(u) for u in unknown)}.")
        for number, pair in attributes.items():
            if set(pair) != {"Name", "Value"}:
                raise FileError(f"Attribute{number}Name and Attribute{number}Value must both be present.")
        self.attributes = [(p["Name"], p["Value"]) for _, p in sorted(attributes.items())]
        self.scalars: list[tuple[int, str, Callable[[str, str], Any], str]] = [
            (self.index[c], field, lambda _c, v: v, c) for c, field in TEXT_COLUMNS.items() if c in self.index
        ] + [(self.index[c], field, _number, c) for c, field in NUMBER_COLUMNS.items() if c in self.index]

    def cell(self, cells: list[str], column: str) -> str:
        i = self.index.get(column)
        return cells[i].strip() if i is not None and i < len(cells) else ""

    def read(self, cells: list[str]) -> tuple[dict[str, Any], QuantityUpdate | None]:
        sku = self.cell(cells, SKU_COLUMN)
        if not sku:
            raise RowError(f"{SKU_COLUMN} is required.")
        body: dict[str, Any] = {"Sku": sku}
        for i, field, convert, column in self.scalars:
            if i < len(cells) and cells[i].strip():
                body[field] = convert(column, cells[i].strip())
        self._relationship(cells, body)
        attributes = [
            {"Name": cells[n].strip(), "Value": cells[v].strip() if v < len(cells) else ""}
            for n, v in self.attributes
            if n < len(cells) and cells[n].strip()
        ]
        if attributes:
            body["Attributes"] = attributes
        labels = self.cell(cells, "Labels")
        if labels:
            body["Labels"] = [{"Name": label.strip()} for label in labels.split(",") if label.strip()]
        return body, self._quantity(cells)

    def _relationship(self, cells: list[str], body: dict[str, Any]) -> None:
        parent = self.cell(cells, "Variation Parent SKU")
        if not parent:
            return
        if parent.lower() == PARENT_MARKER:
            body["IsParent"] = True
            return
        parent_id = self.catalog.by_sku.get(parent)
        if parent_id is None:
            raise RowError(f"Parent SKU '{parent}' is neither earlier in the file nor an existing product.")
        body["ParentProductID"] = parent_id

    def _quantity(self, cells: list[str]) -> QuantityUpdate | None:
        quantity, per_dc = self.cell(cells, "Quantity"), self.cell(cells, "DC Quantity")
        if not quantity and not per_dc:
            return None
        if quantity and per_dc:
            raise RowError("Give either Quantity or DC Quantity, not both.")
        update_type = self.cell(cells, "Quantity Update Type") or DEFAULT_UPDATE_TYPE
        if update_type not in UPDATE_TYPES:
            raise RowError(f"Quantity Update Type '{update_type}' is not one of {', '.join(sorted(UPDATE_TYPES))}.")
        centers = self.catalog.distribution_centers
        if quantity:
            default = self.catalog.default_distribution_center()
            if default is None:
                raise RowError("Quantity needs a distribution center that is not externally managed; use DC Quantity.")
            return QuantityUpdate(update_type, [(default, _integer("Quantity", quantity))])
        codes = {dc["Code"]: dc_id for dc_id, dc in centers.items()}
        updates = []
        for entry in (e.strip() for e in per_dc.split(",")):
            code, equals, amount = entry.partition("=")
            if not equals or code.strip() not in codes:
                raise RowError(f"DC Quantity entry '{entry}' must be CODE=QUANTITY with a known DC code.")
            updates.append((codes[code.strip()], _integer("DC Quantity", amount.strip())))
        return QuantityUpdate(update_type, updates)


def process(text: str, catalog: Catalog) -> Iterator[Result]:
    """Apply the file row by row; yields one result per data row (blank rows are skipped).

    Raises FileError before touching anything when the file as a whole is unusable.
    """
    lines = text.split("\n")
    header = [name.strip() for name in lines[0].rstrip("\r").split("\t")]
    if not any(header):
        raise FileError("The file is empty or has no header row.")
    reader = _RowReader(header, catalog)
    for line, raw in enumerate(lines[1:], start=2):
        cells = raw.rstrip("\r").split("\t")
        if not any(cell.strip() for cell in cells):
            continue
        sku = reader.cell(cells, SKU_COLUMN)
        try:
            if len(cells) > len(header):
                raise RowError(f"The row has {len(cells)} cells but the header has {len(header)} columns.")
            body, quantity = reader.read(cells)
            catalog.upsert_by_sku(body, quantity)
        except (RowError, ApiError) as error:
            yield Result(line, sku, str(error))
        else:
            yield Result(line, sku, None)


RESULT_HEADER = ("Line", SKU_COLUMN, "Status", "Message")


def result_line(result: Result) -> str:
    """One tab-separated line; whitespace inside values is collapsed so a cell never breaks the layout."""
    status, message = ("Success", "") if result.error is None else ("Error", result.error)
    cells = (str(result.line), result.sku, status, message)
    return "\t".join(" ".join(cell.split()) for cell in cells) + "\n"
