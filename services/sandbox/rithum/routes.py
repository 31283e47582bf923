"""The `/v1` resources: one table of (method, path pattern, kind, handler).

The same table serves top-level requests and `$batch` parts, so a part behaves exactly like the call
it stands for. `kind` names the endpoint in the statistics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .catalog import PRODUCT_EXPANDS, PRODUCT_SCHEMA
from .errors import ApiError, bad_request
from .odata import Query, T, page_bounds, parse_expand, parse_key, parse_query, parse_select
from .orders import ORDER_EXPANDS, ORDER_SCHEMA, parse_exported
from .state import Sandbox

PRODUCT_PAGE = 100
ORDER_PAGE = 100
# The real API answers 20 orders per page once collections are expanded (its documented nextLink).
ORDER_PAGE_EXPANDED = 20


@dataclass
class Call:
    method: str
    path: str  # below /v1/, e.g. "Products(12)/UpdateQuantity"
    params: list[tuple[str, str]]
    body: bytes
    base_url: str  # scheme://host:port, for @odata.context and nextLink
    profile_id: int = 0
    application_id: str = ""
    in_batch: bool = False

    def json(self) -> Any:
        if not self.body.strip():
            raise bad_request("The request body is empty; a JSON object is required.")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise bad_request(f"The request body is not valid JSON: {exc}.") from None


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Sandbox, Call, tuple[str, ...]], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    kind: str
    handler: Handler


ROUTES: list[Route] = []


def route(method: str, pattern: str, kind: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for one in method.split("|"):
            ROUTES.append(Route(one, re.compile(pattern + r"\Z"), kind, handler))
        return handler

    return register


def match(method: str, path: str) -> tuple[Route, tuple[str, ...]] | ApiError:
    allowed = False
    for candidate in ROUTES:
        found = candidate.pattern.match(path)
        if found:
            if candidate.method == method:
                return candidate, found.groups()
            allowed = True
    if allowed:
        return ApiError(405, f"The requested resource does not support http method '{method}'.")
    return ApiError(404, f"No HTTP resource was found that matches the request URI 'v1/{path}'.")


def _context(call: Call, fragment: str) -> str:
    return f"{call.base_url}/v1/$metadata#{fragment}"


def _page(
    call: Call,
    query: Query,
    ids: list[int],
    page_size: int,
    render: Callable[[int], dict[str, Any] | None],
    entity: str,
    continuation: Callable[[], str] | None = None,
) -> Reply:
    """One page of `ids`; `render` gives None for an entity gone since the IDs were taken (it is left out)."""
    start, end, next_query = page_bounds(query, len(ids), page_size, continuation)
    body: dict[str, Any] = {"@odata.context": _context(call, entity)}
    if query.count:
        body["@odata.count"] = len(ids)
    body["value"] = [row for row in map(render, ids[start:end]) if row is not None]
    if next_query is not None:
        body["@odata.nextLink"] = f"{call.base_url}/v1/{call.path}?{next_query}"
    return Reply(200, body)


# --- products ------------------------------------------------------------------------------------

PRODUCT_ID = r"Products\((\d+)\)"


def _no_extra(query: Query, allowed: set[str], entity: str) -> None:
    """Reject unknown parameters: a misspelt `exported` would otherwise silently list everything."""
    unknown = sorted(set(query.extra) - allowed)
    if unknown:
        raise bad_request(f"The query parameter '{unknown[0]}' is not supported on {entity}.")


def _product_query(call: Call, *, listing: bool = False) -> tuple[Query, list[str] | None, set[str]]:
    query = parse_query(call.params, skiptoken=listing)
    _no_extra(query, set(), "Products")
    select = parse_select(query.select, "Product", PRODUCT_SCHEMA)
    return query, select, parse_expand(query.expand, "Product", PRODUCT_EXPANDS)


@route("GET", "Products", "products.list")
def list_products(sb: Sandbox, call: Call, _: tuple[str, ...]) -> Reply:
    """The first page runs the query; its nextLink names the matches kept for the pages after (`$skiptoken`)."""
    query, select, expand = _product_query(call, listing=True)
    catalog = sb.catalog
    if query.skiptoken is None:
        ids = catalog.query_ids(query.filter, query.orderby)
    else:
        ids = catalog.resume(query.skiptoken, query.filter, query.orderby)

    def continuation() -> str:
        return query.skiptoken or catalog.keep(ids, query.filter, query.orderby)

    def render(product_id: int) -> dict[str, Any] | None:
        product = catalog.products.get(product_id)  # None: deleted after the first page
        return None if product is None else catalog.render(product, select, expand)

    return _page(call, query, ids, PRODUCT_PAGE, render, "Products", continuation)


@route("GET", PRODUCT_ID, "products.get")
def get_product(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    _, select, expand = _product_query(call)
    product = sb.catalog.get(int(groups[0]))
    return Reply(
        200, {"@odata.context": _context(call, "Products/$entity"), **sb.catalog.render(product, select, expand)}
    )


# Navigation collections have calls of their own; a product body naming one is refused, as Rithum does.
COLLECTION_CALLS = {
    "Attributes": "POST /v1/Products({id})/UpdateAttributes",
    "Labels": "PUT or DELETE /v1/ProductLabels(ProductID={id}, Name='…')",
    "BundleComponents": "PUT or DELETE /v1/ProductBundleComponents(ProductID={id}, ComponentID=…)",
    "DCQuantities": "POST /v1/Products({id})/UpdateQuantity",
    "Images": "/v1/Images(ProductID={id}, PlacementName='…')",
    "Children": "ParentProductID on each child product",
}
# CA's create-a-bundle example posts the components with the bundle.
CREATE_ACCEPTS = {"BundleComponents"}


def _no_collections(body: Any, product_id: int | None) -> Any:
    """Refuse a navigation collection in a product body, naming the call that sets it instead."""
    if isinstance(body, dict):
        for name, call in COLLECTION_CALLS.items():
            if name not in body or (product_id is None and name in CREATE_ACCEPTS):
                continue
            if product_id is None:
                where = "when creating a product; create it, then use " + call.format(id="ID")
            else:
                where = f"by PATCH or PUT of Products({product_id}); use " + call.format(id=product_id)
            raise bad_request(f"The navigation property '{name}' of type 'Product' cannot be set {where}.")
    return body


@route("POST", "Products", "products.create")
def create_product(sb: Sandbox, call: Call, _: tuple[str, ...]) -> Reply:
    product = sb.catalog.create(_no_collections(call.json(), None))
    body = sb.catalog.render(product, None, ())
    return Reply(
        201,
        {"@odata.context": _context(call, "Products/$entity"), **body},
        {"Location": f"{call.base_url}/v1/Products({product['ID']})"},
    )


@route("PATCH|PUT", PRODUCT_ID, "products.update")
def update_product(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    product_id = int(groups[0])
    sb.catalog.update(product_id, _no_collections(call.json(), product_id))
    return Reply(204)


@route("DELETE", PRODUCT_ID, "products.delete")
def delete_product(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    sb.catalog.delete(int(groups[0]))
    return Reply(204)


@route("POST", PRODUCT_ID + "/UpdateQuantity", "products.update_quantity")
def update_quantity(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    sb.catalog.update_quantity(int(groups[0]), call.json())
    return Reply(204)


@route("POST", PRODUCT_ID + "/UpdateAttributes", "products.update_attributes")
def update_attributes(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    sb.catalog.update_attributes(int(groups[0]), call.json())
    return Reply(204)


@route("GET", PRODUCT_ID + "/(" + "|".join(PRODUCT_EXPANDS) + ")", "products.collection")
def product_collection(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    product = sb.catalog.get(int(groups[0]))
    rows = sb.catalog.render(product, ["ID"], [groups[1]])[groups[1]]
    return Reply(200, {"@odata.context": _context(call, groups[1]), "value": rows})


LABEL_KEY = {"ProductID": T.INT, "Name": T.STR}
COMPONENT_KEY = {"ProductID": T.INT, "ComponentID": T.INT}


def _key_body(call: Call, entity: str, key: dict[str, Any], extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The optional JSON body of a keyed entity: key properties in it must repeat the URI's."""
    if not call.body.strip():
        return {}
    body = call.json()
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    for name, value in body.items():
        if name not in key and name not in extra:
            raise bad_request(f"The property '{name}' does not exist on type '{entity}'.")
        if name in key and value != key[name]:
            raise bad_request(f"The property '{name}' in the body does not match the key in the URI.")
    return body


@route("PUT|DELETE", r"ProductLabels\((.*)\)", "product_labels.write")
def product_label(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    """`PUT` adds the label (idempotent), `DELETE` removes it: the real URI, usable inside `$batch`."""
    key = parse_key(groups[0], "ProductLabel", LABEL_KEY)
    if call.method == "PUT":
        _key_body(call, "ProductLabel", key)
        sb.catalog.add_label(key["ProductID"], key["Name"])
    else:
        sb.catalog.remove_label(key["ProductID"], key["Name"])
    return Reply(204)


@route("PUT|DELETE", r"ProductBundleComponents\((.*)\)", "product_bundle_components.write")
def product_bundle_component(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    """`PUT {"Quantity": n}` adds a component to a bundle or changes its quantity; `DELETE` removes it."""
    key = parse_key(groups[0], "ProductBundleComponent", COMPONENT_KEY)
    if call.method == "PUT":
        body = _key_body(call, "ProductBundleComponent", key, frozenset({"Quantity"}))
        sb.catalog.set_bundle_component(key["ProductID"], key["ComponentID"], body.get("Quantity"))
    else:
        sb.catalog.remove_bundle_component(key["ProductID"], key["ComponentID"])
    return Reply(204)


@route("GET", "DistributionCenters", "distribution_centers.list")
def list_distribution_centers(sb: Sandbox, call: Call, _: tuple[str, ...]) -> Reply:
    rows = [sb.catalog.render_distribution_center(dc) for dc in sb.catalog.distribution_centers.values()]
    return Reply(200, {"@odata.context": _context(call, "DistributionCenters"), "value": rows})


@route("GET", r"DistributionCenters\((\d+)\)", "distribution_centers.get")
def get_distribution_center(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    dc = sb.catalog.distribution_centers.get(int(groups[0]))
    if dc is None:
        raise ApiError(404, f"No DistributionCenter with ID {groups[0]} was found.")
    return Reply(200, sb.catalog.render_distribution_center(dc))


# --- orders --------------------------------------------------------------------------------------

ORDER_ID = r"Orders\((\d+)\)"


def _order_query(call: Call) -> tuple[Query, list[str] | None, set[str]]:
    query = parse_query(call.params)
    select = parse_select(query.select, "Order", ORDER_SCHEMA)
    return query, select, parse_expand(query.expand, "Order", ORDER_EXPANDS)


@route("GET", "Orders", "orders.list")
def list_orders(sb: Sandbox, call: Call, _: tuple[str, ...]) -> Reply:
    query, select, expand = _order_query(call)
    _no_extra(query, {"exported"}, "Orders")
    exported = parse_exported(query.extra.get("exported"))
    ids = sb.orders.query_ids(query.filter, query.orderby, exported, call.application_id)
    orders = sb.orders.orders
    page = ORDER_PAGE_EXPANDED if expand else ORDER_PAGE
    return _page(call, query, ids, page, lambda i: sb.orders.render(orders[i], select, expand), "Orders")


@route("GET", ORDER_ID, "orders.get")
def get_order(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    _, select, expand = _order_query(call)
    order = sb.orders.get(int(groups[0]))
    return Reply(200, {"@odata.context": _context(call, "Orders/$entity"), **sb.orders.render(order, select, expand)})


@route("PATCH|PUT", ORDER_ID, "orders.update")
def update_order(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    sb.orders.patch(int(groups[0]), call.json())
    return Reply(204)


@route("POST|DELETE", ORDER_ID + "/Export", "orders.export")
def export_order(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    if call.in_batch:
        raise bad_request("Orders(ID)/Export is not supported inside a $batch request; call it on its own.")
    sb.orders.set_exported(int(groups[0]), call.application_id, call.method == "POST")
    return Reply(204)


@route("POST", ORDER_ID + "/Ship", "orders.ship")
def ship_order(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    sb.orders.ship(int(groups[0]), call.json(), sb.catalog.distribution_centers)
    return Reply(204)


@route("POST", ORDER_ID + "/Adjust", "orders.adjust")
def adjust_order(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    sb.orders.adjust_order(int(groups[0]), call.json())
    return Reply(204)


@route("POST", r"OrderItems\((\d+)\)/Adjust", "order_items.adjust")
def adjust_order_item(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    sb.orders.adjust_item(int(groups[0]), call.json())
    return Reply(204)


@route("POST", "Fulfillments", "fulfillments.create")
def create_fulfillment(sb: Sandbox, call: Call, _: tuple[str, ...]) -> Reply:
    fulfillment = sb.orders.create_fulfillment(call.json(), sb.catalog.distribution_centers)
    body = {"@odata.context": _context(call, "Fulfillments/$entity"), **sb.orders.render_fulfillment(fulfillment)}
    return Reply(201, body)


@route("GET", r"Fulfillments\((\d+)\)", "fulfillments.get")
def get_fulfillment(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    fulfillment = sb.orders.get_fulfillment(int(groups[0]))
    body = {"@odata.context": _context(call, "Fulfillments/$entity"), **sb.orders.render_fulfillment(fulfillment)}
    return Reply(200, body)


@route("PATCH|PUT", r"Fulfillments\((\d+)\)", "fulfillments.update")
def update_fulfillment(sb: Sandbox, call: Call, groups: tuple[str, ...]) -> Reply:
    sb.orders.patch_fulfillment(int(groups[0]), call.json(), sb.catalog.distribution_centers)
    return Reply(204)
