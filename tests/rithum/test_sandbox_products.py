"""The Rithum sandbox's own rules, seen over raw HTTP: OAuth, product validation, labels and bundle
components by their real URIs, distribution centres, OData, limits."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import httpx

from shared.rithum import batch
from shared.rithum.batch import BatchRequest
from shared.rithum.client import RithumClient
from tests.rithum.conftest import Admin, SandboxAddress

DENIED = {"Message": "Authorization has been denied for this request."}


def _basic(app: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{app}:{secret}".encode()).decode()}


async def test_oauth_refresh_token_grant_and_denials(admin: Admin, rithum_sandbox: SandboxAddress) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": "sandbox-refresh"}
    async with httpx.AsyncClient(base_url=rithum_sandbox.url) as http:
        wrong_secret = await http.post("/oauth2/token", data=form, headers=_basic("sandbox-app", "nope"))
        assert wrong_secret.status_code == 401
        assert wrong_secret.json()["error"] == "invalid_client"
        wrong_refresh = await http.post(
            "/oauth2/token", data={**form, "refresh_token": "x"}, headers=_basic("sandbox-app", "sandbox-secret")
        )
        assert (wrong_refresh.status_code, wrong_refresh.json()["error"]) == (400, "invalid_grant")

        granted = await http.post("/oauth2/token", data=form, headers=_basic("sandbox-app", "sandbox-secret"))
        assert granted.status_code == 200
        token = granted.json()
        assert token["token_type"] == "bearer" and token["expires_in"] == 3600

        no_token = await http.get("/v1/Products")
        assert (no_token.status_code, no_token.json()) == (401, DENIED)
        as_query = await http.get("/v1/Products", params={"access_token": token["access_token"]})
        assert as_query.status_code == 200
        as_header = await http.get("/v1/Products", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert as_header.status_code == 200

        await admin.faults(expire_tokens=True)
        expired = await http.get("/v1/Products", params={"access_token": token["access_token"]})
        assert (expired.status_code, expired.json()) == (401, DENIED)


async def test_tokens_expire_after_the_configured_ttl(
    admin: Admin, api: httpx.AsyncClient, rithum_sandbox: SandboxAddress
) -> None:
    await admin.config(token_ttl=0.3)
    async with httpx.AsyncClient(base_url=rithum_sandbox.url) as http:
        granted = await http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": "sandbox-refresh"},
            headers=_basic("sandbox-app", "sandbox-secret"),
        )
        headers = {"Authorization": f"Bearer {granted.json()['access_token']}"}
        assert (await http.get("/v1/DistributionCenters", headers=headers)).status_code == 200
        await asyncio.sleep(0.4)
        assert (await http.get("/v1/DistributionCenters", headers=headers)).status_code == 401


async def test_sku_and_title_lengths_and_duplicates(api: httpx.AsyncClient) -> None:
    too_long_sku = await api.post("/v1/Products", json={"Sku": "S" * 51, "Title": "t"})
    assert too_long_sku.status_code == 400
    assert "Sku must be at most 50 characters" in too_long_sku.json()["error"]["message"]
    too_long_title = await api.post("/v1/Products", json={"Sku": "OK-1", "Title": "T" * 121})
    assert too_long_title.status_code == 400
    assert "Title must be at most 120 characters" in too_long_title.json()["error"]["message"]

    created = await api.post("/v1/Products", json={"Sku": "S" * 50, "Title": "T" * 120, "RetailPrice": 9.5})
    assert created.status_code == 201
    assert created.json()["ID"] >= 1 and created.json()["CreateDateUtc"].endswith("Z")
    duplicate = await api.post("/v1/Products", json={"Sku": "S" * 50})
    assert duplicate.status_code == 409

    unknown = await api.post("/v1/Products", json={"Sku": "X", "Colour": "red"})
    assert unknown.json()["error"]["message"] == "The property 'Colour' does not exist on type 'Product'."
    wrong_type = await api.post("/v1/Products", json={"Sku": "X", "RetailPrice": "cheap"})
    assert wrong_type.status_code == 400 and "RetailPrice" in wrong_type.json()["error"]["message"]
    not_json = await api.post("/v1/Products", content=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]


async def test_children_need_an_existing_parent_with_the_same_relationship(api: httpx.AsyncClient) -> None:
    standalone = (await api.post("/v1/Products", json={"Sku": "PLAIN"})).json()["ID"]
    orphan = await api.post("/v1/Products", json={"Sku": "C-1", "ParentProductID": 999, "RelationshipName": "Size"})
    assert orphan.status_code == 400 and "Parent product 999 does not exist" in orphan.text
    not_parent = await api.post(
        "/v1/Products", json={"Sku": "C-1", "ParentProductID": standalone, "RelationshipName": "Size"}
    )
    assert not_parent.status_code == 400 and "is not a parent product" in not_parent.text

    nameless_parent = await api.post("/v1/Products", json={"Sku": "P-0", "IsParent": True})
    assert nameless_parent.status_code == 400 and "needs a RelationshipName" in nameless_parent.text
    parent = (await api.post("/v1/Products", json={"Sku": "P-1", "IsParent": True, "RelationshipName": "Size"})).json()
    assert parent["IsInRelationship"] is True
    mismatch = await api.post(
        "/v1/Products", json={"Sku": "C-1", "ParentProductID": parent["ID"], "RelationshipName": "Color"}
    )
    assert mismatch.status_code == 400 and "same RelationshipName" in mismatch.text

    child = await api.post(
        "/v1/Products", json={"Sku": "C-1", "ParentProductID": parent["ID"], "RelationshipName": "Size"}
    )
    assert child.status_code == 201 and child.json()["IsInRelationship"] is True
    expanded = (await api.get(f"/v1/Products({parent['ID']})", params={"$expand": "Children"})).json()
    assert expanded["Children"] == [{"ProductID": parent["ID"], "ChildProductID": child.json()["ID"]}]
    by_parent = await api.get("/v1/Products", params={"$filter": f"ParentProductID eq {parent['ID']}"})
    assert [p["Sku"] for p in by_parent.json()["value"]] == ["C-1"]

    quantity = await api.post(
        f"/v1/Products({parent['ID']})/UpdateQuantity",
        json={"Value": {"UpdateType": "Absolute", "Updates": [{"DistributionCenterID": 1, "Quantity": 5}]}},
    )
    assert quantity.status_code == 400 and "parents carry no quantity" in quantity.text
    delete_parent = await api.delete(f"/v1/Products({parent['ID']})")
    assert delete_parent.status_code == 400


async def test_bundles_need_existing_components_and_at_most_ten(api: httpx.AsyncClient) -> None:
    ids = [(await api.post("/v1/Products", json={"Sku": f"COMP-{n}"})).json()["ID"] for n in range(11)]
    missing = await api.post(
        "/v1/Products",
        json={"Sku": "B-1", "BundleType": "BundleItem", "BundleComponents": [{"ComponentSku": "GHOST", "Quantity": 1}]},
    )
    assert missing.status_code == 400 and "Bundle component SKU 'GHOST' does not exist" in missing.text
    eleven = [{"ProductID": i, "Quantity": 1} for i in ids]
    too_many = await api.post(
        "/v1/Products", json={"Sku": "B-1", "BundleType": "BundleItem", "BundleComponents": eleven}
    )
    assert too_many.status_code == 400 and "at most 10 components" in too_many.text
    untyped = await api.post("/v1/Products", json={"Sku": "B-1", "BundleComponents": eleven[:2]})
    assert untyped.status_code == 400

    bundle = await api.post(
        "/v1/Products",
        json={
            "Sku": "B-1",
            "BundleType": "BundleItem",
            "BundleComponents": [{"ComponentSku": "COMP-0", "Quantity": 2}, {"ProductID": ids[1], "Quantity": 1}],
        },
    )
    assert bundle.status_code == 201
    for product_id, quantity in ((ids[0], 7), (ids[1], 10)):
        response = await api.post(
            f"/v1/Products({product_id})/UpdateQuantity",
            json={"Value": {"UpdateType": "UnShipped", "Updates": [{"DistributionCenterID": 2, "Quantity": quantity}]}},
        )
        assert response.status_code == 204
    read = (await api.get(f"/v1/Products({bundle.json()['ID']})", params={"$expand": "BundleComponents"})).json()
    assert read["TotalAvailableQuantity"] == 3  # 7 // 2 of COMP-0 limits it
    assert [(c["ComponentSku"], c["Quantity"]) for c in read["BundleComponents"]] == [("COMP-0", 2), ("COMP-1", 1)]
    component_delete = await api.delete(f"/v1/Products({ids[0]})")
    assert component_delete.status_code == 400 and "component of a bundle" in component_delete.text


async def test_odata_filters_select_paging_and_errors(api: httpx.AsyncClient, admin: Admin) -> None:
    await admin.seed_products(250, prefix="OD-")
    cutoff = datetime.now(UTC) + timedelta(milliseconds=5)
    await asyncio.sleep(0.02)
    for sku in ("LATE-1", "LATE-2"):
        await api.post("/v1/Products", json={"Sku": sku, "Title": "it's late"})

    literal = cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    recent = await api.get("/v1/Products", params={"$filter": f"UpdateDateUtc ge {literal}", "$select": "Sku"})
    assert [p["Sku"] for p in recent.json()["value"]] == ["LATE-1", "LATE-2"]
    quoted = await api.get("/v1/Products", params={"$filter": f"UpdateDateUtc ge '{literal}'"})
    assert quoted.status_code == 400 and "incompatible types" in quoted.json()["error"]["message"]

    skus = " or ".join(f"Sku eq 'OD-{n:06d}'" for n in range(1, 21))
    grouped = await api.get("/v1/Products", params={"$filter": skus, "$select": "ID,Sku"})
    assert len(grouped.json()["value"]) == 20 and set(grouped.json()["value"][0]) == {"ID", "Sku"}
    escaped = await api.get("/v1/Products", params={"$filter": "Title eq 'it''s late' and Sku eq 'LATE-2'"})
    assert [p["Sku"] for p in escaped.json()["value"]] == ["LATE-2"]

    first = (await api.get("/v1/Products", params={"$select": "ID", "$count": "true"})).json()
    assert first["@odata.count"] == 252 and len(first["value"]) == 100
    assert "$skip=100" in first["@odata.nextLink"]
    second = (await api.get(first["@odata.nextLink"])).json()
    assert second["value"][0]["ID"] == first["value"][-1]["ID"] + 1
    ordered = (await api.get("/v1/Products", params={"$orderby": "Sku desc", "$top": "2", "$select": "Sku"})).json()
    assert [p["Sku"] for p in ordered["value"]] == ["OD-000250", "OD-000249"] and "@odata.nextLink" not in ordered
    limited = (await api.get("/v1/Products", params={"$top": "150", "$select": "ID"})).json()
    last_page = (await api.get(limited["@odata.nextLink"])).json()
    assert len(limited["value"]) + len(last_page["value"]) == 150 and "@odata.nextLink" not in last_page

    for params, message in (
        ({"$filter": "Colour eq 'red'"}, "Could not find a property named 'Colour'"),
        ({"$filter": "Sku eq"}, "Unexpected end"),
        ({"$select": "Nope"}, "Could not find a property named 'Nope'"),
        ({"$expand": "Nope"}, "navigation property named 'Nope'"),
        ({"$top": "-1"}, "not a non-negative integer"),
        ({"$search": "x"}, "'$search' is not supported"),
    ):
        response = await api.get("/v1/Products", params=params)
        assert response.status_code == 400 and message in response.json()["error"]["message"], (params, response.text)
    assert (await api.get("/v1/Products(99999)")).status_code == 404
    assert (await api.get("/v1/Nothing")).status_code == 404


async def test_requests_per_minute_and_concurrency_limits_answer_429(api: httpx.AsyncClient, admin: Admin) -> None:
    await admin.config(requests_per_minute=3)
    statuses = [(await api.get("/v1/DistributionCenters")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = await api.get("/v1/DistributionCenters")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1

    await admin.config(requests_per_minute=2000, concurrency=2)
    await admin.faults(latency_ms=300)
    answers = await asyncio.gather(*(api.get("/v1/DistributionCenters") for _ in range(3)))
    assert sorted(r.status_code for r in answers) == [200, 200, 429]

    await admin.faults(latency_ms=0, burst_429=2, retry_after=7)
    burst = [await api.get("/v1/DistributionCenters") for _ in range(3)]
    assert [r.status_code for r in burst] == [429, 429, 200] and burst[0].headers["Retry-After"] == "7"
    await admin.faults(outage=True)
    assert (await api.get("/v1/DistributionCenters")).status_code == 503


async def test_update_quantity_and_attributes_validation(api: httpx.AsyncClient) -> None:
    product_id = (await api.post("/v1/Products", json={"Sku": "Q-1"})).json()["ID"]
    url = f"/v1/Products({product_id})"
    bad_dc = await api.post(
        f"{url}/UpdateQuantity",
        json={"Value": {"UpdateType": "Absolute", "Updates": [{"DistributionCenterID": 9, "Quantity": 1}]}},
    )
    assert bad_dc.status_code == 400 and "Distribution center 9 does not exist" in bad_dc.text
    bad_type = await api.post(f"{url}/UpdateQuantity", json={"Value": {"UpdateType": "Some", "Updates": []}})
    assert bad_type.status_code == 400 and "UpdateType must be one of" in bad_type.text
    for update_type, quantity in (("Absolute", 5), ("Relative", 3)):
        body = {"Value": {"UpdateType": update_type, "Updates": [{"DistributionCenterID": 1, "Quantity": quantity}]}}
        assert (await api.post(f"{url}/UpdateQuantity", json=body)).status_code == 204
    long_name = await api.post(
        f"{url}/UpdateAttributes", json={"Value": {"Attributes": [{"Name": "N" * 33, "Value": "v"}]}}
    )
    assert long_name.status_code == 400
    ok = await api.post(f"{url}/UpdateAttributes", json={"Value": {"Attributes": [{"Name": "Color", "Value": "Red"}]}})
    assert ok.status_code == 204
    read = (await api.get(url, params={"$expand": "Attributes,DCQuantities"})).json()
    assert read["TotalAvailableQuantity"] == 8
    assert read["DCQuantities"] == [{"ProductID": product_id, "DistributionCenterID": 1, "AvailableQuantity": 8}]
    assert read["Attributes"] == [{"ProductID": product_id, "Name": "Color", "Value": "Red"}]


async def _send(api: httpx.AsyncClient, request: BatchRequest) -> httpx.Response:
    """A connector-built request sent on its own, by the same URI it has inside a `$batch`."""
    return await api.request(request.method, f"/v1/{request.path}", json=request.body)


async def test_product_bodies_refuse_navigation_collections(
    api: httpx.AsyncClient, client: RithumClient, admin: Admin
) -> None:
    product_id = (await api.post("/v1/Products", json={"Sku": "NAV-1", "Title": "Before"})).json()["ID"]
    for method, name, call in (
        ("PATCH", "Attributes", f"POST /v1/Products({product_id})/UpdateAttributes"),
        ("PATCH", "Labels", f"/v1/ProductLabels(ProductID={product_id}, Name="),
        ("PUT", "BundleComponents", f"/v1/ProductBundleComponents(ProductID={product_id}, ComponentID="),
        ("PATCH", "DCQuantities", f"POST /v1/Products({product_id})/UpdateQuantity"),
        ("PUT", "Images", "/v1/Images(ProductID="),
        ("PATCH", "Children", "ParentProductID"),
    ):
        refused = await api.request(method, f"/v1/Products({product_id})", json={"Title": "After", name: []})
        message = refused.json()["error"]["message"]
        assert refused.status_code == 400 and f"navigation property '{name}'" in message and call in message, message

    for name in ("Attributes", "Labels", "DCQuantities", "Images", "Children"):
        created = await api.post("/v1/Products", json={"Sku": "NAV-2", name: []})
        assert created.status_code == 400 and f"'{name}'" in created.text and "when creating" in created.text
    component = (await api.post("/v1/Products", json={"Sku": "NAV-C"})).json()["ID"]
    bundle = {"Sku": "NAV-B", "BundleType": "BundleItem", "BundleComponents": [{"ProductID": component, "Quantity": 2}]}
    assert (await api.post("/v1/Products", json=bundle)).status_code == 201  # CA's create-a-bundle example

    results = await client.batch(
        [
            batch.update_product(product_id, {"Attributes": [{"Name": "Color", "Value": "Red"}]}),
            batch.update_product(product_id, {"Labels": [{"Name": "Sale"}]}),
            batch.create_product({"Sku": "NAV-3", "Attributes": [{"Name": "Color", "Value": "Red"}]}),
            batch.update_product(product_id, {"Title": "After"}),
        ]
    )
    assert [r.status for r in results] == [400, 400, 400, 204]
    assert "'Attributes'" in results[0].message and "'Labels'" in results[1].message
    stored = await admin.product("NAV-1")
    assert stored["Title"] == "After" and stored["Attributes"] == [] and stored["Labels"] == []
    assert await admin.product("NAV-3") is None


async def test_labels_by_their_real_uri_top_level_and_in_a_batch(
    api: httpx.AsyncClient, client: RithumClient, admin: Admin
) -> None:
    product_id = (await api.post("/v1/Products", json={"Sku": "LBL-1"})).json()["ID"]
    before = (await admin.product("LBL-1"))["UpdateDateUtc"]
    await asyncio.sleep(0.01)
    assert (await _send(api, batch.add_label(product_id, "O'Brien sale"))).status_code == 204
    assert (await _send(api, batch.add_label(product_id, "O'Brien sale"))).status_code == 204  # idempotent
    spaced = await api.put(f"/v1/ProductLabels(ProductID={product_id}, Name='Plain')")
    assert spaced.status_code == 204
    stored = await admin.product("LBL-1")
    assert [label["Name"] for label in stored["Labels"]] == ["O'Brien sale", "Plain"]
    assert stored["UpdateDateUtc"] > before
    changed = await api.get("/v1/Products", params={"$filter": f"UpdateDateUtc gt {before}", "$select": "Sku"})
    assert [p["Sku"] for p in changed.json()["value"]] == ["LBL-1"]  # the UpdateDateUtc index moved too

    assert (await _send(api, batch.remove_label(product_id, "O'Brien sale"))).status_code == 204
    gone = await _send(api, batch.remove_label(product_id, "O'Brien sale"))
    assert gone.status_code == 404 and "no label" in gone.text
    for bad in ("ProductID='1',Name='x'", "ProductID=1", "ProductID=1,Name='it's'", "ProductID=1,Label='x'"):
        assert (await api.put(f"/v1/ProductLabels({bad})")).status_code == 400, bad
    assert (await api.get(f"/v1/ProductLabels(ProductID={product_id},Name='Plain')")).status_code == 405

    results = await client.batch(
        [
            batch.add_label(product_id, "Two words"),
            batch.add_label(product_id, "It's 50% off, really"),
            batch.remove_label(product_id, "Plain"),
            batch.remove_label(product_id, "Never had it"),
            batch.add_label(99999, "Nobody"),
        ]
    )
    assert [r.status for r in results] == [204, 204, 204, 404, 404]
    labels = [label["Name"] for label in (await admin.product("LBL-1"))["Labels"]]
    assert labels == ["Two words", "It's 50% off, really"]


async def test_bundle_components_by_their_real_uri(api: httpx.AsyncClient, client: RithumClient, admin: Admin) -> None:
    ids = {}
    for sku in ("BC-A", "BC-B", *(f"BC-{n}" for n in range(9))):
        ids[sku] = (await api.post("/v1/Products", json={"Sku": sku})).json()["ID"]
        quantity = {"Value": {"UpdateType": "Absolute", "Updates": [{"DistributionCenterID": 1, "Quantity": 12}]}}
        await api.post(f"/v1/Products({ids[sku]})/UpdateQuantity", json=quantity)
    parent = (await api.post("/v1/Products", json={"Sku": "BC-P", "IsParent": True, "RelationshipName": "Size"})).json()
    body = {
        "Sku": "BC-BUNDLE",
        "BundleType": "BundleItem",
        "BundleComponents": [{"ComponentSku": "BC-A", "Quantity": 2}],
    }
    bundle = (await api.post("/v1/Products", json=body)).json()["ID"]

    assert (await _send(api, batch.set_bundle_component(bundle, ids["BC-B"], 3))).status_code == 204
    assert (await _send(api, batch.set_bundle_component(bundle, ids["BC-A"], 4))).status_code == 204  # a change
    stored = await admin.product("BC-BUNDLE")
    assert [(c["ComponentSku"], c["Quantity"]) for c in stored["BundleComponents"]] == [("BC-A", 4), ("BC-B", 3)]
    assert stored["TotalAvailableQuantity"] == 3  # 12 // 4

    for request, reason in (
        (batch.set_bundle_component(ids["BC-A"], ids["BC-B"], 1), "is not a bundle"),
        (batch.set_bundle_component(bundle, parent["ID"], 1), "is a parent product"),
        (batch.set_bundle_component(bundle, bundle, 1), "cannot contain itself"),
        (batch.set_bundle_component(bundle, 99999, 1), "does not exist"),
        (batch.set_bundle_component(bundle, ids["BC-B"], 0), "Quantity of at least 1"),
        (batch.remove_bundle_component(bundle, ids["BC-0"]), "is not a component"),
    ):
        refused = await _send(api, request)
        assert refused.status_code in (400, 404) and reason in refused.text, (request, refused.text)
    nine_more = [batch.set_bundle_component(bundle, ids[f"BC-{n}"], 1) for n in range(9)]
    results = await client.batch(nine_more)
    assert [r.status for r in results] == [204] * 8 + [400] and "at most 10 components" in results[-1].message

    results = await client.batch(
        [batch.remove_bundle_component(bundle, ids[f"BC-{n}"]) for n in range(8)]
        + [batch.remove_bundle_component(bundle, ids["BC-B"]), batch.remove_bundle_component(bundle, ids["BC-A"])]
    )
    assert [r.status for r in results] == [204] * 9 + [400]
    assert "must keep at least one component" in results[-1].message
    stored = await admin.product("BC-BUNDLE")
    assert [(c["ComponentSku"], c["Quantity"]) for c in stored["BundleComponents"]] == [("BC-A", 4)]
    assert (await api.delete(f"/v1/Products({ids['BC-B']})")).status_code == 204  # no longer in a bundle


async def test_externally_managed_distribution_centers_take_no_quantity(api: httpx.AsyncClient, admin: Admin) -> None:
    centers = (await api.get("/v1/DistributionCenters")).json()["value"]
    assert [(dc["ID"], dc["Code"], dc["IsExternallyManaged"]) for dc in centers] == [
        (1, "MAIN", False),
        (2, "EAST", False),
        (3, "WEST", False),
        (4, "FBA", True),
    ]
    product_id = (await api.post("/v1/Products", json={"Sku": "FBA-1"})).json()["ID"]

    def body(*updates: tuple[int, int]) -> dict[str, object]:
        rows = [{"DistributionCenterID": dc, "Quantity": qty} for dc, qty in updates]
        return {"Value": {"UpdateType": "Absolute", "Updates": rows}}

    refused = await api.post(f"/v1/Products({product_id})/UpdateQuantity", json=body((1, 5), (4, 3)))
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "Distribution center 4 (FBA) is externally managed; its quantity cannot be set."
    )
    assert (await admin.product("FBA-1"))["DCQuantities"] == []  # nothing of the refused call applied
    for dc in (1, 2, 3):
        assert (await api.post(f"/v1/Products({product_id})/UpdateQuantity", json=body((dc, 2)))).status_code == 204
    assert (await admin.product("FBA-1"))["TotalAvailableQuantity"] == 6
