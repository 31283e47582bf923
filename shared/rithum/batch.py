"""OData `$batch` for Rithum, without I/O: build the `multipart/mixed` body, parse the answer into one
result per sub-request.

Each part is `Content-Type: application/http` with a `Content-ID`, a request line with the absolute
URL and an optional JSON body (the layout of skuvault's BatchBuilder). At most 100 parts per batch;
`Orders(ID)/Export` does not work inside one.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import message_of

MAX_PARTS = 100
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_STATUS_LINE = re.compile(r"HTTP/\d(?:\.\d)?\s+(\d{3})")


@dataclass(frozen=True)
class BatchRequest:
    method: str
    path: str  # below /v1/, e.g. "Products(12)/UpdateQuantity"
    body: Any = None
    # Safe to send again after a 5xx? Defaults to False for POST, True otherwise.
    idempotent: bool | None = None

    @property
    def retry_safe(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method.upper() != "POST"


@dataclass
class BatchResult:
    request: BatchRequest
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return message_of(self.body, f"HTTP {self.status}")


def build(requests: Sequence[BatchRequest], base_url: str) -> tuple[str, bytes]:
    """The Content-Type header and the body; Content-IDs are the 1-based positions."""
    if not requests:
        raise ValueError("a $batch needs at least one request")
    if len(requests) > MAX_PARTS:
        raise ValueError(f"a $batch holds at most {MAX_PARTS} requests, got {len(requests)}")
    boundary = f"batch_{uuid.uuid4()}"
    root = base_url.rstrip("/") + "/v1/"
    out: list[str] = []
    for number, request in enumerate(requests, 1):
        if re.match(r"Orders\(\d+\)/Export\Z", request.path):
            raise ValueError("Orders(ID)/Export does not work inside a $batch")
        out.append(
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {number}\r\n\r\n{request.method.upper()} {root}{request.path} HTTP/1.1\r\n"
        )
        if request.body is not None:
            out.append(f"Content-Type: application/json\r\n\r\n{json.dumps(request.body)}\r\n")
        else:
            out.append("\r\n")
    out.append(f"--{boundary}--\r\n")
    return f"multipart/mixed; boundary={boundary}", "".join(out).encode()


def _head_and_rest(block: str) -> tuple[list[str], str]:
    for separator in ("\r\n\r\n", "\n\n"):
        head, found, rest = block.partition(separator)
        if found:
            return head.splitlines(), rest
    return block.splitlines(), ""


def _headers(lines: Sequence[str]) -> dict[str, str]:
    pairs = (line.partition(":") for line in lines)
    return {name.strip().lower(): value.strip() for name, colon, value in pairs if colon}


def parse(content_type: str, body: bytes, requests: Sequence[BatchRequest]) -> list[BatchResult]:
    """One result per request, in request order, matched by Content-ID (else by position)."""
    found = _BOUNDARY.search(content_type or "")
    if not found:
        raise ValueError(f"the $batch answer is not multipart (Content-Type {content_type!r})")
    text = body.decode("utf-8")
    chunks = text.split("--" + found.group(1))
    results: dict[int, BatchResult] = {}
    for position, chunk in enumerate(chunks[1:], 1):
        if chunk.startswith("--"):
            break
        head, payload = _head_and_rest(chunk.strip("\r\n"))
        part_headers = _headers(head)
        lines, response_body = _head_and_rest(payload)
        status = _STATUS_LINE.match(lines[0]) if lines else None
        if status is None:
            raise ValueError(f"$batch answer part {position} has no HTTP status line")
        content_id = part_headers.get("content-id", "")
        index = int(content_id) if content_id.isdigit() else position
        if not 1 <= index <= len(requests):
            raise ValueError(f"$batch answer part {position} names unknown Content-ID {content_id!r}")
        response_body = response_body.strip()
        try:
            parsed: Any = json.loads(response_body) if response_body else None
        except ValueError:
            parsed = response_body
        results[index] = BatchResult(requests[index - 1], int(status.group(1)), parsed, _headers(lines[1:]))
    missing = [n for n in range(1, len(requests) + 1) if n not in results]
    if missing:
        raise ValueError(f"the $batch answer lacks parts for requests {missing}")
    return [results[n] for n in range(1, len(requests) + 1)]


def parts_in(content_type: str, body: bytes) -> int:
    """How many sub-requests a built `$batch` body carries (each one costs a call of the budget)."""
    found = _BOUNDARY.search(content_type or "")
    if not found:
        return 0
    return body.count(b"--" + found.group(1).encode() + b"\r\n")


# --- the sub-requests the connector sends --------------------------------------------------------


def quantity_body(updates: Mapping[int, int], update_type: str = "UnShipped") -> dict[str, Any]:
    """`UpdateQuantity` payload: quantity per distribution centre ID."""
    return {
        "Value": {
            "UpdateType": update_type,
            "Updates": [{"DistributionCenterID": dc, "Quantity": qty} for dc, qty in updates.items()],
        }
    }


def attributes_body(attributes: Mapping[str, str]) -> dict[str, Any]:
    return {"Value": {"Attributes": [{"Name": k, "Value": v} for k, v in attributes.items()]}}


def update_quantity(product_id: int, updates: Mapping[int, int], update_type: str = "UnShipped") -> BatchRequest:
    return BatchRequest(
        "POST", f"Products({product_id})/UpdateQuantity", quantity_body(updates, update_type), update_type != "Relative"
    )


def update_attributes(product_id: int, attributes: Mapping[str, str]) -> BatchRequest:
    return BatchRequest("POST", f"Products({product_id})/UpdateAttributes", attributes_body(attributes), True)


def update_product(product_id: int, changes: Mapping[str, Any]) -> BatchRequest:
    return BatchRequest("PATCH", f"Products({product_id})", dict(changes))


def create_product(body: Mapping[str, Any]) -> BatchRequest:
    return BatchRequest("POST", "Products", dict(body))


def _quoted(text: str) -> str:
    """An OData string literal: single quotes, a quote inside doubled."""
    return "'" + text.replace("'", "''") + "'"


def label_path(product_id: int, name: str) -> str:
    return f"ProductLabels(ProductID={product_id},Name={_quoted(name)})"


def add_label(product_id: int, name: str) -> BatchRequest:
    """The real URI of a product label (aliases such as `Products(ID)/Labels('x')` are refused in a batch)."""
    return BatchRequest("PUT", label_path(product_id, name))


def remove_label(product_id: int, name: str) -> BatchRequest:
    return BatchRequest("DELETE", label_path(product_id, name))


def bundle_component_path(product_id: int, component_id: int) -> str:
    return f"ProductBundleComponents(ProductID={product_id},ComponentID={component_id})"


def set_bundle_component(product_id: int, component_id: int, quantity: int) -> BatchRequest:
    return BatchRequest("PUT", bundle_component_path(product_id, component_id), {"Quantity": quantity})


def remove_bundle_component(product_id: int, component_id: int) -> BatchRequest:
    return BatchRequest("DELETE", bundle_component_path(product_id, component_id))
