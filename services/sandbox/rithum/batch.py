"""OData `$batch` wire format: split a `multipart/mixed` request into HTTP requests, join the replies.

Changesets (nested multipart parts) are refused: the real API's atomic changesets are not imitated.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import bad_request
from .routes import Reply

MAX_PARTS = 100
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


@dataclass
class Part:
    content_id: str | None
    method: str
    path: str  # below /v1/
    params: list[tuple[str, str]]
    body: bytes


def _split_head(block: bytes) -> tuple[list[str], bytes]:
    """Header lines and the rest, tolerating LF as well as CRLF line ends."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, rest = block.partition(separator)
        if found:
            return head.decode("utf-8").splitlines(), rest
    return block.decode("utf-8").splitlines(), b""


def _headers(lines: list[str]) -> dict[str, str]:
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def _strip_crlf(data: bytes) -> bytes:
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data[:-1] if data.endswith(b"\n") else data


def parse(content_type: str, body: bytes) -> list[Part]:
    found = _BOUNDARY.search(content_type or "")
    if not content_type.lower().startswith("multipart/mixed") or not found:
        raise bad_request("A $batch request must be multipart/mixed with a boundary.")
    delimiter = b"--" + found.group(1).encode()
    chunks = body.split(delimiter)
    if len(chunks) < 2:
        raise bad_request("The $batch body contains no parts for its boundary.")
    parts: list[Part] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter; the epilogue follows
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        parts.append(_part(_strip_crlf(chunk), len(parts) + 1))
        if len(parts) > MAX_PARTS:
            raise bad_request(f"A $batch request may contain at most {MAX_PARTS} requests.")
    if not parts:
        raise bad_request("The $batch request contains no parts.")
    return parts


def _part(chunk: bytes, number: int) -> Part:
    head, payload = _split_head(chunk)
    headers = _headers(head)
    kind = headers.get("content-type", "").lower()
    if kind.startswith("multipart/mixed"):
        raise bad_request("Changesets are not supported by the sandbox; send each request as its own part.")
    if not kind.startswith("application/http"):
        raise bad_request(f"Part {number} must have Content-Type application/http.")
    lines, request_body = _split_head(payload)
    if not lines:
        raise bad_request(f"Part {number} has no request line.")
    # The URL is what lies between the method and the HTTP version: clients write key literals such as
    # `Name='two words'` into the request line unencoded, so it may hold spaces.
    method, _, rest = lines[0].strip().partition(" ")
    url, _, version = rest.rpartition(" ")
    url = url.strip() if version.upper().startswith("HTTP/") else rest.strip()
    if not method or not url:
        raise bad_request(f"Part {number} has an invalid request line '{lines[0]}'.")
    method = method.upper()
    split = urlsplit(url)
    path = unquote(split.path)
    for prefix in ("/v1/", "v1/"):
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    else:
        if path.startswith("/"):
            raise bad_request(f"Part {number} addresses '{path}', which is outside /v1.")
    return Part(
        content_id=headers.get("content-id"),
        method=method,
        path=path,
        params=parse_qsl(split.query, keep_blank_values=True),
        body=_strip_crlf(request_body) if request_body.strip() else b"",
    )


def render(replies: list[tuple[str | None, Reply]]) -> tuple[str, bytes]:
    boundary = f"batchresponse_{uuid.uuid4()}"
    out: list[str] = []
    for content_id, reply in replies:
        out.append(f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n")
        if content_id is not None:
            out.append(f"Content-ID: {content_id}\r\n")
        out.append(f"\r\nHTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}\r\n")
        for name, value in reply.headers.items():
            out.append(f"{name}: {value}\r\n")
        if reply.body is not None:
            out.append("Content-Type: application/json; odata.metadata=minimal\r\n\r\n")
            out.append(json.dumps(reply.body) + "\r\n")
        else:
            out.append("\r\n")
    out.append(f"--{boundary}--\r\n")
    return f"multipart/mixed; boundary={boundary}", "".join(out).encode()
