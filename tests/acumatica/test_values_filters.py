"""Pure helpers: value-wrapped JSON, field errors, filter building, models."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import httpx
import pytest

from shared.acumatica import filters as F
from shared.acumatica.errors import ValidationError, error_from_response
from shared.acumatica.models import SalesOrder, StockItem
from shared.acumatica.values import custom_block, field_errors, unwrap, wrap

WRAPPED = {
    "id": "6f1c0000-0000-0000-0000-000000000001",
    "rowNumber": 1,
    "OrderNbr": {"value": "SO000042"},
    "ShipToAddress": {"City": {"value": "Austin"}},
    "Details": [{"id": "line-1", "InventoryID": {"value": "AP000001"}, "OrderQty": {"value": 2.0}}],
    "custom": {"Document": {"UsrChannel": {"type": "CustomStringField", "value": "Amazon"}}},
}
PLAIN = {
    "id": "6f1c0000-0000-0000-0000-000000000001",
    "rowNumber": 1,
    "OrderNbr": "SO000042",
    "ShipToAddress": {"City": "Austin"},
    "Details": [{"id": "line-1", "InventoryID": "AP000001", "OrderQty": 2.0}],
    "custom": {"Document": {"UsrChannel": "Amazon"}},
}


def test_wrap_and_unwrap_are_inverse() -> None:
    assert unwrap(WRAPPED) == PLAIN
    assert wrap(PLAIN) == WRAPPED
    stamp = datetime(2024, 7, 15, 10, 31, 28, 402000, tzinfo=timezone(timedelta(hours=3)))
    assert wrap({"LastModified": stamp}) == {"LastModified": {"value": "2024-07-15T10:31:28.402+03:00"}}
    assert custom_block([("ItemSettings.UsrCAProductID", "9")]) == {"ItemSettings": {"UsrCAProductID": "9"}}
    with pytest.raises(ValueError, match=r"View\.Field"):
        custom_block([("UsrCAProductID", "9")])


def test_field_errors_are_keyed_by_path() -> None:
    body = {
        "CustomerID": {"value": "X", "error": "'Customer' cannot be found in the system."},
        "Details": [{"InventoryID": {"value": "A"}}, {"InventoryID": {"value": "B", "error": "missing"}}],
        "error": "Inserting 'Sales Order' record raised at least one error. Please review the errors.",
    }
    assert field_errors(body) == {
        ("CustomerID",): "'Customer' cannot be found in the system.",
        ("Details", 1, "InventoryID"): "missing",
    }


def test_422_becomes_a_validation_error_with_the_erp_message() -> None:
    body = {"CustomerID": {"value": "X", "error": "'Customer' cannot be found in the system."}, "error": "Inserting."}
    request = httpx.Request("PUT", "http://erp/entity/Default/24.200.001/SalesOrder?$expand=Details")
    error = error_from_response(httpx.Response(422, json=body, request=request))
    assert isinstance(error, ValidationError)
    assert error.message == "Inserting. CustomerID: 'Customer' cannot be found in the system."
    assert error.url == "http://erp/entity/Default/24.200.001/SalesOrder"


def test_filter_literals_and_composition() -> None:
    since = datetime(2024, 7, 15, 7, 31, 28, 402000, tzinfo=UTC)
    assert str(F.modified_since(since)) == "LastModified gt datetimeoffset'2024-07-15T07:31:28.402+00:00'"
    assert str(F.field("Description").eq("O'Brien's")) == "Description eq 'O''Brien''s'"
    assert str(F.field("Date").ge(date(2025, 6, 17))) == "Date ge date'2025-06-17'"
    assert str(F.field("IsAKit").eq(True) | ~F.field("TemplateItemID").eq(None)) == (
        "(IsAKit eq true) or (not (TemplateItemID eq null))"
    )
    assert str(F.attribute("ACTIVERITHUM").eq("1")) == "cf.String(f='ItemSettings.AttributeACTIVERITHUM') eq '1'"
    assert str(F.field("InventoryID").startswith("AP")) == "startswith(InventoryID,'AP')"
    assert F.changed_between(None, None) is None
    assert str(F.changed_between(since, None, "LastModifiedDateTime")) == (
        "LastModifiedDateTime ge datetimeoffset'2024-07-15T07:31:28.402+00:00'"
    )
    with pytest.raises(TypeError):
        F.literal(object())


def test_models_read_and_write_the_wire_format() -> None:
    item = StockItem.from_api(
        {
            "InventoryID": {"value": "AP000001"},
            "DefaultPrice": {"value": 9.5},
            "LastModified": {"value": "2024-07-15T10:31:28.402+00:00"},
            "Attributes": [{"AttributeID": {"value": "ALLOWFBA"}, "Value": {"value": "1"}}],
            "ImageUrl": {"value": "http://img"},
        }
    )
    assert item.LastModified == datetime(2024, 7, 15, 10, 31, 28, 402000, tzinfo=UTC)
    assert item.flag("ALLOWFBA") and not item.flag("ACTIVERITHUM")
    assert item.to_api()["ImageUrl"] == {"value": "http://img"}  # unknown fields pass through
    order = SalesOrder(CustomerID="C000001", ExternalRef="R-1")
    assert order.to_api() == {"CustomerID": {"value": "C000001"}, "ExternalRef": {"value": "R-1"}}
    with pytest.raises(ValueError):
        SalesOrder(ExternalRef="x" * 41)
