"""Inventory feeds through the sandbox's real FTP server: writer, atomic upload, processing, result file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aioftp
import pytest

from shared.requestlog import RequestLog
from shared.rithum.feed import FeedResult, FeedRow, FeedWriter, parse_results
from shared.rithum.ftp import FeedUploader
from tests.rithum.conftest import Admin, SandboxAddress

ROWS = 10_000


def _catalogue() -> tuple[list[FeedRow], dict[int, str]]:
    """10k rows: standalone items, variation families, bundles, updates, and rows that must fail
    (expected line number -> part of the reason)."""
    rows: list[FeedRow] = []
    failures: dict[int, str] = {}

    def add(row: FeedRow, failure: str | None = None) -> None:
        rows.append(row)
        if failure:
            failures[len(rows) + 1] = failure  # line 1 is the header

    for n in range(1, 8001):
        add(
            FeedRow(
                sku=f"FD-{n:05d}",
                title=f"Feed item {n}\twith a tab",
                classification="Gear",
                brand="Northpeak",
                retail_price=19.99,
                seller_cost=7.5,
                quantity_update_type="Absolute",
                dc_quantities={"MAIN": n % 7, "EAST": 2} if n % 2 else {},
                quantity=None if n % 2 else 4,
                labels=("Feed", "Gear"),
                attributes={"Color": "Red"},
            )
        )
    for family in range(1, 301):
        parent = f"FAM-{family:04d}"
        add(FeedRow(sku=parent, title=f"Family {family}", is_parent=True, relationship_name="Size"))
        for size in ("S", "M", "L"):
            add(
                FeedRow(
                    sku=f"{parent}-{size}",
                    relationship_name="Size",
                    parent_sku=parent,
                    quantity=3,
                    attributes={"Size": size},
                )
            )
    for bundle in range(1, 601):
        add(
            FeedRow(
                sku=f"BND-{bundle:04d}",
                title=f"Bundle {bundle}",
                bundle_components={f"FD-{bundle:05d}": 2, f"FD-{bundle + 1:05d}": 1},
            )
        )
    add(FeedRow(sku="ORPHAN-1", relationship_name="Size", parent_sku="NO-SUCH-PARENT"), "neither earlier in the file")
    add(FeedRow(sku="BND-BAD", bundle_components={"GHOST-SKU": 1}), "Bundle component SKU 'GHOST-SKU' does not exist")
    add(FeedRow(sku="LONG-TITLE", title="T" * 121), "Title must be at most 120 characters")
    add(FeedRow(sku="BAD-DC", dc_quantities={"MOON": 1}), "known DC code")
    add(FeedRow(sku="WRONG-REL", relationship_name="Color", parent_sku="FAM-0001"), "same RelationshipName")
    add(FeedRow(sku="FAM-0002", quantity=5), "parents carry no quantity")
    add(FeedRow(sku="BND-MANY", bundle_components={f"FD-{n:05d}": 1 for n in range(1, 12)}), "at most 10 components")
    add(FeedRow(sku="S" * 51), "Sku must be at most 50 characters")
    add(FeedRow(sku="BAD-PRICE", extra={"Starting Bid": "cheap"}), "Starting Bid 'cheap' is not a number")
    first_update = len(rows)
    while len(rows) < ROWS:  # a second mention of a SKU updates it
        n = len(rows) - first_update + 1
        add(FeedRow(sku=f"FD-{n:05d}", title=f"Renamed {n}", extra={"Starting Bid": "1.5"}))
    return rows, failures


async def _stream(rows: list[FeedRow], writer: FeedWriter) -> AsyncIterator[str]:
    async for line in writer.alines(_aiter(rows)):
        yield line


async def _aiter(rows: list[FeedRow]) -> AsyncIterator[FeedRow]:
    for row in rows:
        yield row


async def test_10k_row_feed_round_trip_with_row_errors(
    uploader: FeedUploader, admin: Admin, request_log: RequestLog
) -> None:
    rows, failures = _catalogue()
    writer = FeedWriter(attribute_slots=1, extra_columns=("Starting Bid",))
    result = await uploader.publish("catalogue-0001.txt", _stream(rows, writer))

    assert len(result.rows) == ROWS and result.file_error is None
    assert [r.line for r in result.rows] == list(range(2, ROWS + 2))
    errors = {r.line: r.message for r in result.errors}
    assert set(errors) == set(failures)
    for line, reason in failures.items():
        assert reason in errors[line], (line, errors[line])
    assert result.rows[0].sku == "FD-00001" and result.rows[0].ok

    odd, even = await admin.product("FD-00003"), await admin.product("FD-00004")
    assert [(q["DistributionCenterID"], q["AvailableQuantity"]) for q in odd["DCQuantities"]] == [(1, 3), (2, 2)]
    assert even["TotalAvailableQuantity"] == 4 and even["Title"] == "Renamed 4" and even["StartingPrice"] == 1.5
    assert odd["Title"] == "Renamed 3" and odd["RetailPrice"] == 19.99 and odd["Brand"] == "Northpeak"
    assert [label["Name"] for label in odd["Labels"]] == ["Feed", "Gear"]
    parent, child = await admin.product("FAM-0007"), await admin.product("FAM-0007-M")
    assert parent["IsParent"] and child["ParentProductID"] == parent["ID"]
    assert child["Attributes"] == [{"ProductID": child["ID"], "Name": "Size", "Value": "M"}]
    bundle = await admin.product("BND-0005")
    assert [(c["ComponentSku"], c["Quantity"]) for c in bundle["BundleComponents"]] == [
        ("FD-00005", 2),
        ("FD-00006", 1),
    ]
    assert await admin.product("ORPHAN-1") is None

    [summary] = await admin.call("GET", "/feeds")
    assert summary["file"] == "/Inventory/catalogue-0001.txt" and summary["errors"] == len(failures)
    stats = (await admin.stats())["ftp"]
    assert stats["files_processed"] == 1 and stats["rows"] == ROWS
    ftp_calls = [(e.method, e.status) for e in request_log.entries if e.system == "rithum-ftp"]
    assert ("STOR", 226) in ftp_calls and ("RENAME", 250) in ftp_calls and ftp_calls[-1] == ("RETR", 226)
    assert all(":sandbox@" not in e.url for e in request_log.entries)


async def test_a_file_without_an_inventory_number_column_gets_one_file_error(uploader: FeedUploader) -> None:
    result = await uploader.publish(
        "broken.txt", ["Auction Title\tQuantity\n", "Lamp\t3\n"], folder="/Inventory/Transform"
    )
    assert result.file_error == "File rejected: The header has no 'Inventory Number' column."
    unknown = await uploader.publish("typo.txt", ["Inventory Number\tRetail Prise\n", "A\t3\n"])
    assert "Unknown columns in the header: 'Retail Prise'" in (unknown.file_error or "")


async def test_files_under_temporary_names_wait_until_renamed(
    rithum_sandbox: SandboxAddress, admin: Admin, uploader: FeedUploader
) -> None:
    async with aioftp.Client.context("127.0.0.1", rithum_sandbox.ftp_port, "sandbox", "sandbox") as ftp:
        async with ftp.upload_stream("/Inventory/partial.txt.tmp") as stream:
            await stream.write(b"Inventory Number\tAuction Title\nTMP-1\tStill uploading\n")
        await asyncio.sleep(0.6)
        assert await ftp.exists("/Inventory/partial.txt.tmp")
        assert await admin.call("GET", "/feeds") == []
        await ftp.rename("/Inventory/partial.txt.tmp", "/Inventory/partial.txt")
    result = await uploader.fetch_result("partial.txt", timeout=10)
    assert [(r.sku, r.ok) for r in result.rows] == [("TMP-1", True)]
    with pytest.raises(aioftp.StatusCodeError):
        async with aioftp.Client.context("127.0.0.1", rithum_sandbox.ftp_port, "sandbox", "sandbox") as ftp:
            async with ftp.upload_stream("/Inventory/Results/forged.results.txt") as stream:
                await stream.write(b"x")


def test_writer_keeps_cells_on_one_line_and_checks_rows() -> None:
    writer = FeedWriter(attribute_slots=1)
    line = writer.line(FeedRow(sku="A", title="two\nlines\tand tab", retail_price=20.0, dc_quantities={"MAIN": 2}))
    cells = line.rstrip("\n").split("\t")
    assert len(cells) == len(writer.columns) and "\n" not in line[:-1]
    assert cells[writer.columns.index("Auction Title")] == "two lines and tab"
    assert cells[writer.columns.index("Retail Price")] == "20.0"
    assert cells[writer.columns.index("DC Quantity")] == "MAIN=2"
    with pytest.raises(ValueError, match="attributes"):
        writer.line(FeedRow(sku="A", attributes={"a": "1", "b": "2"}))
    with pytest.raises(ValueError, match="parent"):
        writer.line(FeedRow(sku="A", is_parent=True, parent_sku="B"))
    with pytest.raises(ValueError, match="header"):
        parse_results("Line\tSku\n")
    parsed = parse_results("Line\tInventory Number\tStatus\tMessage\n2\tA\tSuccess\t\n3\tB\tError\tTitle too long\n")
    assert parsed == FeedResult(rows=parsed.rows) and [r.ok for r in parsed.rows] == [True, False]
    assert parsed.by_sku()["B"].message == "Title too long"
