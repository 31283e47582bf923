"""Inventory feeds through the sandbox's real FTP server: writer, atomic upload, processing in arrival
order after the pick-up delay, the admin API's feed status, and the result file of `--feed-results`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aioftp
import httpx
import pytest

from shared.requestlog import RequestLog
from shared.rithum.feed import FeedResult, FeedRow, FeedWriter, parse_results
from shared.rithum.ftp import FeedUploader, FtpLocation
from tests.rithum.conftest import Admin, SandboxAddress
from tests.support.processes import free_port, service

ROWS = 10_000


def _catalogue() -> tuple[list[FeedRow], dict[int, str]]:
    """10k rows: standalone items, variation families, updates, and rows that must fail
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
    add(FeedRow(sku="ORPHAN-1", relationship_name="Size", parent_sku="NO-SUCH-PARENT"), "neither earlier in the file")
    add(FeedRow(sku="TO-FBA", dc_quantities={"MAIN": 1, "FBA": 1}), "Distribution center 4 (FBA) is externally managed")
    add(FeedRow(sku="LONG-TITLE", title="T" * 121), "Title must be at most 120 characters")
    add(FeedRow(sku="BAD-DC", dc_quantities={"MOON": 1}), "known DC code")
    add(FeedRow(sku="WRONG-REL", relationship_name="Color", parent_sku="FAM-0001"), "same RelationshipName")
    add(FeedRow(sku="FAM-0002", quantity=5), "parents carry no quantity")
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
    await uploader.upload("catalogue-0001.txt", _stream(rows, writer))
    summary = await admin.feed("catalogue-0001.txt")

    assert summary["file"] == "/Inventory/catalogue-0001.txt" and summary["file_error"] is None
    assert summary["rows"] == ROWS and summary["errors"] == len(failures) and summary["result_file"] is None
    assert summary["received_at"] <= summary["processed_at"]
    errors = {e["line"]: e["message"] for e in summary["row_errors"]}
    assert set(errors) == set(failures)
    for line, reason in failures.items():
        assert reason in errors[line], (line, errors[line])

    odd, even = await admin.product("FD-00003"), await admin.product("FD-00004")
    assert [(q["DistributionCenterID"], q["AvailableQuantity"]) for q in odd["DCQuantities"]] == [(1, 3), (2, 2)]
    assert [(q["DistributionCenterID"], q["AvailableQuantity"]) for q in even["DCQuantities"]] == [(1, 4)]
    assert even["TotalAvailableQuantity"] == 4 and even["Title"] == "Renamed 4" and even["StartingPrice"] == 1.5
    assert odd["Title"] == "Renamed 3" and odd["RetailPrice"] == 19.99 and odd["Brand"] == "Northpeak"
    assert [label["Name"] for label in odd["Labels"]] == ["Feed", "Gear"]
    parent, child = await admin.product("FAM-0007"), await admin.product("FAM-0007-M")
    assert parent["IsParent"] and child["ParentProductID"] == parent["ID"]
    assert child["Attributes"] == [{"ProductID": child["ID"], "Name": "Size", "Value": "M"}]
    assert await admin.product("ORPHAN-1") is None and await admin.product("TO-FBA") is None  # a row is all or nothing

    stats = (await admin.stats())["ftp"]
    assert stats["files_processed"] == 1 and stats["rows"] == ROWS and stats["row_errors"] == len(failures)
    ftp_calls = [(e.method, e.status) for e in request_log.entries if e.system == "rithum-ftp"]
    assert ftp_calls == [("STOR", 226), ("RENAME", 250)]
    assert all(":sandbox@" not in e.url for e in request_log.entries)


async def test_a_bad_header_rejects_the_whole_file(
    uploader: FeedUploader, admin: Admin, api: httpx.AsyncClient
) -> None:
    await api.post("/v1/Products", json={"Sku": "KEEP-1", "Title": "Before"})
    await api.post("/v1/Products", json={"Sku": "PART-1"})
    await uploader.upload("broken.txt", ["Auction Title\tQuantity\n", "Lamp\t3\n"], folder="/Inventory/Transform")
    broken = await admin.feed("broken.txt")
    assert broken["file"] == "/Inventory/Transform/broken.txt"
    assert broken["file_error"] == "The header has no 'Inventory Number' column."
    assert (broken["rows"], broken["errors"], broken["row_errors"]) == (0, 0, [])

    await uploader.upload("typo.txt", ["Inventory Number\tRetail Prise\n", "A\t3\n"])
    assert "Unknown columns in the header: 'Retail Prise'" in (await admin.feed("typo.txt"))["file_error"]

    # No bundle column is documented: a header naming one is a bad header, and no row of the file applies.
    lines = ["Inventory Number\tAuction Title\tBundle Components\n", "KEEP-1\tAfter\t\n", "NEW-B\tBundle\tPART-1=2\n"]
    await uploader.upload("bundles.txt", lines)
    bundles = await admin.feed("bundles.txt")
    assert bundles["file_error"] == "Unknown columns in the header: 'Bundle Components'." and bundles["rows"] == 0
    assert (await admin.product("KEEP-1"))["Title"] == "Before" and await admin.product("NEW-B") is None


async def test_row_errors_in_the_status_are_capped_but_counted(uploader: FeedUploader, admin: Admin) -> None:
    lines = ["Inventory Number\tRetail Price\n", *(f"ERR-{n}\tcheap\n" for n in range(1005))]
    await uploader.upload("many-errors.txt", lines)
    summary = await admin.feed("many-errors.txt")
    assert summary["rows"] == 1005 and summary["errors"] == 1005 and len(summary["row_errors"]) == 1000
    assert summary["row_errors"][0] == {"line": 2, "sku": "ERR-0", "message": "Retail Price 'cheap' is not a number."}


async def test_plain_quantity_goes_to_the_lowest_dc_that_is_not_externally_managed(
    uploader: FeedUploader, admin: Admin
) -> None:
    await admin.call(
        "PUT",
        "/distribution-centers",
        [
            {"ID": 1, "Code": "FBA", "Name": "Amazon FBA", "Type": "ExternallyManaged"},
            {"ID": 2, "Code": "MAIN", "Name": "Main"},
        ],
    )
    await uploader.upload("quantity.txt", ["Inventory Number\tQuantity\n", "QTY-1\t7\n"])
    assert (await admin.feed("quantity.txt"))["errors"] == 0
    stored = await admin.product("QTY-1")
    assert [(q["DistributionCenterID"], q["AvailableQuantity"]) for q in stored["DCQuantities"]] == [(2, 7)]


async def test_no_result_file_unless_switched_on(
    rithum_sandbox: SandboxAddress, admin: Admin, uploader: FeedUploader
) -> None:
    assert (await admin.call("GET", "/config"))["feed_results"] is False
    await uploader.upload("quiet.txt", ["Inventory Number\n", "Q-1\n"])
    assert (await admin.feed("quiet.txt"))["result_file"] is None
    async with aioftp.Client.context("127.0.0.1", rithum_sandbox.ftp_port, "sandbox", "sandbox") as ftp:
        assert not await ftp.exists("/Inventory/Results/quiet.txt.results.txt")
        assert not await ftp.exists("/Inventory/quiet.txt")  # the processed file is removed

    await admin.config(feed_results=True)  # the debugging switch works at run time too
    result = await uploader.publish("loud.txt", ["Inventory Number\n", "Q-2\n"])
    assert [(r.sku, r.ok) for r in result.rows] == [("Q-2", True)]


@pytest.fixture(scope="module")
def sandbox_with_results() -> Iterator[SandboxAddress]:
    """A second sandbox process, started with the `--feed-results` debugging flag."""
    port, ftp_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["services.sandbox.rithum", "--port", str(port), "--ftp-port", str(ftp_port)]
    with service([*args, "--feed-delay", "0.1", "--feed-results"], f"{url}/_sandbox/health"):
        yield SandboxAddress(url, ftp_port)


async def test_feed_results_flag_writes_a_read_only_result_file(
    sandbox_with_results: SandboxAddress, request_log: RequestLog
) -> None:
    location = FtpLocation("127.0.0.1", sandbox_with_results.ftp_port, "sandbox", "sandbox")
    uploader = FeedUploader(location, request_log, poll_interval=0.1, result_timeout=30)
    lines = ["Inventory Number\tAuction Title\n", "R-1\tOne\n", f"R-2\t{'T' * 121}\n"]
    result = await uploader.publish("results.txt", lines)
    assert [(r.line, r.sku, r.ok) for r in result.rows] == [(2, "R-1", True), (3, "R-2", False)]
    assert "Title must be at most 120 characters" in result.rows[1].message
    rejected = await uploader.publish("rejected.txt", ["Inventory Number\tBundle Components\n", "R-3\tR-1=1\n"])
    assert rejected.file_error == "File rejected: Unknown columns in the header: 'Bundle Components'."
    async with httpx.AsyncClient(base_url=f"{sandbox_with_results.url}/_sandbox") as http:
        assert (await http.get("/config")).json()["feed_results"] is True
        summaries = (await http.get("/feeds")).json()
    assert [s["result_file"] for s in summaries] == [
        "/Inventory/Results/results.txt.results.txt",
        "/Inventory/Results/rejected.txt.results.txt",
    ]
    with pytest.raises(aioftp.StatusCodeError):
        async with aioftp.Client.context("127.0.0.1", sandbox_with_results.ftp_port, "sandbox", "sandbox") as ftp:
            async with ftp.upload_stream("/Inventory/Results/forged.results.txt") as stream:
                await stream.write(b"x")


async def test_files_under_temporary_names_wait_until_renamed(rithum_sandbox: SandboxAddress, admin: Admin) -> None:
    async with aioftp.Client.context("127.0.0.1", rithum_sandbox.ftp_port, "sandbox", "sandbox") as ftp:
        async with ftp.upload_stream("/Inventory/partial.txt.tmp") as stream:
            await stream.write(b"Inventory Number\tAuction Title\nTMP-1\tStill uploading\n")
        await asyncio.sleep(0.6)
        assert await ftp.exists("/Inventory/partial.txt.tmp")
        assert await admin.call("GET", "/feeds") == [] and await admin.call("GET", "/feeds/pending") == []
        await ftp.rename("/Inventory/partial.txt.tmp", "/Inventory/partial.txt")
    summary = await admin.feed("partial.txt", timeout=10)
    assert (summary["rows"], summary["errors"]) == (1, 0)
    assert (await admin.product("TMP-1"))["Title"] == "Still uploading"


async def test_a_long_delay_keeps_files_pending_until_fast_forwarded(uploader: FeedUploader, admin: Admin) -> None:
    await admin.config(feed_delay=3600)
    family = ["Inventory Number\tRelationship Name\tVariation Parent SKU\n", "FAM-P\tSize\tParent\n"]
    await uploader.upload("1-parent.txt", family)
    await admin.config(feed_delay=0.1)  # applies to files received from now on; the parent's file keeps its hour
    children = ["Inventory Number\tRelationship Name\tVariation Parent SKU\tQuantity\n"]
    children += [f"FAM-P-{size}\tSize\tFAM-P\t2\n" for size in ("S", "M")]
    await uploader.upload("2-children.txt", children)
    await asyncio.sleep(0.5)  # the children's timer has run out, but files go in arrival order

    pending = await admin.call("GET", "/feeds/pending")
    assert [p["file"] for p in pending] == ["/Inventory/1-parent.txt", "/Inventory/2-children.txt"]
    assert pending[0]["due_at"] > pending[1]["due_at"] > pending[0]["received_at"]
    assert await admin.call("GET", "/feeds") == [] and await admin.product("FAM-P") is None

    processed = await admin.call("POST", "/feeds/process-pending")
    assert [(s["file"], s["rows"], s["errors"]) for s in processed] == [
        ("/Inventory/1-parent.txt", 1, 0),
        ("/Inventory/2-children.txt", 2, 0),
    ]
    assert await admin.call("GET", "/feeds/pending") == []
    parent, child = await admin.product("FAM-P"), await admin.product("FAM-P-M")
    assert parent["IsParent"] and child["ParentProductID"] == parent["ID"] and child["TotalAvailableQuantity"] == 2


def test_writer_keeps_cells_on_one_line_and_checks_rows() -> None:
    writer = FeedWriter(attribute_slots=1)
    assert "Bundle Components" not in writer.columns
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
