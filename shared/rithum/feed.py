"""Inventory feed files in Rithum's default tab-delimited layout, and their result files. No I/O.

A feed is UTF-8, one header row naming the columns, then one product per line. Values are written
plainly (no quoting), so tabs and line breaks inside a value become spaces. Only documented columns of
the default layout are written: Rithum rejects a whole file whose header names an unknown column, and
no bundle column is documented, so bundles and their components go through the REST API instead.

Real Rithum reports a feed's outcome in its UI and by e-mail, not as a file; `parse_results` reads the
result file the sandbox writes only when started with `--feed-results` (a debugging aid).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

PARENT_MARKER = "Parent"
RESULT_HEADER = ("Line", "Inventory Number", "Status", "Message")
BASE_COLUMNS = (
    "Inventory Number",
    "Auction Title",
    "Classification",
    "Relationship Name",
    "Variation Parent SKU",
    "Brand",
    "Description",
    "UPC",
    "Weight",
    "Retail Price",
    "Buy It Now Price",
    "Seller Cost",
    "Quantity",
    "Quantity Update Type",
    "DC Quantity",
    "Labels",
)
Number = int | float | Decimal


@dataclass
class FeedRow:
    """One product line. Empty (None) values leave the product's current value unchanged."""

    sku: str
    title: str | None = None
    classification: str | None = None
    relationship_name: str | None = None
    is_parent: bool = False
    parent_sku: str | None = None
    brand: str | None = None
    description: str | None = None
    upc: str | None = None
    weight: Number | None = None
    retail_price: Number | None = None
    buy_it_now_price: Number | None = None
    seller_cost: Number | None = None
    quantity: int | None = None  # into the default distribution centre
    quantity_update_type: str | None = None  # Absolute (default), Relative, Available, InStock, UnShipped
    dc_quantities: Mapping[str, int] = field(default_factory=dict)  # DC code -> quantity
    labels: Sequence[str] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)  # other columns of the default layout


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)
    return " ".join(text.replace("\t", " ").splitlines())


class FeedWriter:
    """Fixes the header up front (a streamed file cannot change it later) and renders rows to lines."""

    def __init__(self, attribute_slots: int = 0, extra_columns: Sequence[str] = ()) -> None:
        self.attribute_slots = attribute_slots
        self.extra_columns = tuple(extra_columns)
        clash = set(self.extra_columns) & set(BASE_COLUMNS)
        if clash:
            raise ValueError(f"extra columns repeat base columns: {sorted(clash)}")
        attribute_columns = [f"Attribute{n}{part}" for n in range(1, attribute_slots + 1) for part in ("Name", "Value")]
        self.columns = (*BASE_COLUMNS, *attribute_columns, *self.extra_columns)

    def header(self) -> str:
        return "\t".join(self.columns) + "\n"

    def line(self, row: FeedRow) -> str:
        if not row.sku or not row.sku.strip():
            raise ValueError("a feed row needs a SKU")
        if row.is_parent and row.parent_sku:
            raise ValueError(f"{row.sku}: a parent row cannot name a parent SKU")
        if row.quantity is not None and row.dc_quantities:
            raise ValueError(f"{row.sku}: give quantity or dc_quantities, not both")
        if len(row.attributes) > self.attribute_slots:
            raise ValueError(
                f"{row.sku}: {len(row.attributes)} attributes but the feed has {self.attribute_slots} slots"
            )
        unknown = set(row.extra) - set(self.extra_columns)
        if unknown:
            raise ValueError(f"{row.sku}: columns {sorted(unknown)} are not in the feed header")
        cells = [
            row.sku,
            row.title,
            row.classification,
            row.relationship_name,
            PARENT_MARKER if row.is_parent else row.parent_sku,
            row.brand,
            row.description,
            row.upc,
            row.weight,
            row.retail_price,
            row.buy_it_now_price,
            row.seller_cost,
            row.quantity,
            row.quantity_update_type if row.quantity is not None or row.dc_quantities else None,
            ", ".join(f"{code}={qty}" for code, qty in row.dc_quantities.items()),
            ",".join(row.labels),
        ]
        pairs = list(row.attributes.items())
        pairs += [("", "")] * (self.attribute_slots - len(pairs))
        cells += [c for pair in pairs for c in pair]
        cells += [row.extra.get(column) for column in self.extra_columns]
        return "\t".join(_cell(c) for c in cells) + "\n"

    def lines(self, rows: Iterable[FeedRow]) -> Iterable[str]:
        yield self.header()
        for row in rows:
            yield self.line(row)

    async def alines(self, rows: AsyncIterable[FeedRow]) -> AsyncIterator[str]:
        yield self.header()
        async for row in rows:
            yield self.line(row)


@dataclass(frozen=True)
class FeedResultRow:
    line: int
    sku: str
    ok: bool
    message: str


@dataclass
class FeedResult:
    rows: list[FeedResultRow]

    @property
    def file_error(self) -> str | None:
        """Set when Rithum rejected the file as a whole (one error row, no SKU)."""
        if len(self.rows) == 1 and not self.rows[0].sku and not self.rows[0].ok:
            return self.rows[0].message
        return None

    @property
    def errors(self) -> list[FeedResultRow]:
        return [r for r in self.rows if not r.ok]

    def by_sku(self) -> dict[str, FeedResultRow]:
        """The last result per SKU (a SKU may appear on several lines)."""
        return {r.sku: r for r in self.rows if r.sku}


def parse_results(text: str) -> FeedResult:
    lines = [line.rstrip("\r") for line in text.split("\n")]
    header = tuple(lines[0].split("\t")) if lines else ()
    if header != RESULT_HEADER:
        raise ValueError(f"unexpected result file header {header!r}")
    rows = []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(RESULT_HEADER) or not cells[0].isdigit() or cells[2] not in ("Success", "Error"):
            raise ValueError(f"result file line {number} is malformed: {line!r}")
        rows.append(FeedResultRow(int(cells[0]), cells[1], cells[2] == "Success", cells[3]))
    return FeedResult(rows)
