"""The Rithum sandbox's own rules, seen over raw HTTP: OAuth, product validation, OData, limits."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import httpx

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
