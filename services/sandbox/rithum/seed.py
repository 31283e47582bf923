"""Realistic demo data: marketplace orders with buyers and lines, and catalogue products.

Deterministic for a given random seed, so a test or a benchmark can ask for the same data again.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from .catalog import utcnow
from .state import Sandbox

FIRST_NAMES = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "James",
    "Isabella",
    "Lucas",
    "Mia",
    "Mason",
    "Charlotte",
    "Ethan",
    "Amelia",
    "Logan",
    "Harper",
    "Aiden",
    "Evelyn",
    "Jackson",
    "Maria",
    "Diego",
    "Wei",
    "Priya",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Martin",
    "Lee",
    "Nguyen",
    "Patel",
    "Kim",
]
STREETS = ["Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Park Blvd", "Pine St", "Elm St", "Lakeview Rd", "2nd Ave"]
CITIES = [
    ("Seattle", "WA", "98101"),
    ("Austin", "TX", "73301"),
    ("Denver", "CO", "80202"),
    ("Boston", "MA", "02108"),
    ("Chicago", "IL", "60601"),
    ("Miami", "FL", "33101"),
    ("Portland", "OR", "97201"),
    ("Atlanta", "GA", "30301"),
    ("Phoenix", "AZ", "85001"),
    ("Columbus", "OH", "43004"),
    ("Raleigh", "NC", "27601"),
    ("San Diego", "CA", "92101"),
]
EMAIL_DOMAINS = ["example.com", "mail.example.net", "inbox.example.org"]
# (SiteID, SiteName, payment method, site order ID pattern)
MARKETPLACES = [
    (640, "Amazon Seller Central - US", "Amazon", "{a:03d}-{b:07d}-{c:07d}"),
    (578, "eBay Fixed Price", "PayPal", "{a:02d}-{b:05d}-{c:05d}"),
    (1143, "Walmart Marketplace", "Walmart", "{b:07d}{c:06d}"),
    (780, "Target Plus", "Target", "TGT{b:07d}"),
]
PRODUCT_WORDS = ["Classic", "Trail", "Urban", "Everyday", "Pro", "Lite", "Premium", "Eco", "Compact", "Deluxe"]
PRODUCT_NOUNS = ["Backpack", "Water Bottle", "Headlamp", "Jacket", "Mug", "Tent", "Sneaker", "Cap", "Blanket"]


def _phone(rng: random.Random) -> str:
    return f"{rng.randint(201, 989)}-555-{rng.randint(100, 9999):04d}"


def order_specs(count: int, seed: int, products: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order bodies for `OrderBook.create`; lines use the given sellable products, else made-up SKUs."""
    rng = random.Random(seed)
    now = utcnow()
    specs = []
    for n in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, state, postal = rng.choice(CITIES)
        site_id, site_name, payment, pattern = rng.choice(MARKETPLACES)
        created = now - timedelta(minutes=rng.randint(1, 60 * 24 * 3))
        address = {
            "FirstName": first,
            "LastName": last,
            "AddressLine1": f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
            "AddressLine2": rng.choice([None, None, None, f"Apt {rng.randint(1, 400)}"]),
            "City": city,
            "StateOrProvince": state,
            "PostalCode": postal,
            "Country": "US",
            "DaytimePhone": _phone(rng),
        }
        items = []
        for _ in range(rng.randint(1, 4)):
            if products:
                product = rng.choice(products)
                sku, title, price = product["Sku"], product.get("Title") or product["Sku"], product.get("RetailPrice")
                product_id = product["ID"]
            else:
                sku, title, price, product_id = f"SKU-{rng.randint(1, 99999):05d}", None, None, None
            unit = float(price) if price else round(rng.uniform(4.99, 199.99), 2)
            items.append(
                {
                    "Sku": sku,
                    "Title": title or f"{rng.choice(PRODUCT_WORDS)} {rng.choice(PRODUCT_NOUNS)}",
                    "ProductID": product_id,
                    "Quantity": rng.choices([1, 2, 3], weights=[80, 15, 5])[0],
                    "UnitPrice": unit,
                    "TaxPrice": round(unit * 0.08, 2),
                    "ShippingPrice": rng.choice([0.0, 0.0, 4.99, 7.99]),
                }
            )
        payment_status = rng.choices(["Cleared", "Submitted", "Deposited"], weights=[85, 10, 5])[0]
        specs.append(
            {
                "SiteID": site_id,
                "SiteName": site_name,
                "SiteOrderID": pattern.format(
                    a=rng.randint(100, 999) if "03d" in pattern else rng.randint(10, 99),
                    b=rng.randint(0, 9_999_999),
                    c=rng.randint(0, 999_999),
                ),
                "BuyerUserId": f"{first.lower()}{last.lower()}{rng.randint(1, 999)}",
                "BuyerEmailAddress": f"{first.lower()}.{last.lower()}{n % 97}@{rng.choice(EMAIL_DOMAINS)}",
                "PaymentMethod": payment,
                "PaymentTransactionID": f"TX{rng.randint(10**9, 10**10 - 1)}",
                "CheckoutStatus": rng.choices(
                    ["Completed", "CompletedAndVisited", "CompletedOffline"], weights=[90, 8, 2]
                )[0],
                "PaymentStatus": payment_status,
                "CreatedDateUtc": created.isoformat(),
                "CheckoutDateUtc": (created + timedelta(seconds=rng.randint(5, 300))).isoformat(),
                "PaymentDateUtc": (created + timedelta(seconds=rng.randint(300, 900))).isoformat(),
                "EstimatedShipDateUtc": (created + timedelta(days=2)).isoformat(),
                **{f"Shipping{k}": v for k, v in address.items()},
                **{f"Billing{k}": v for k, v in address.items()},
                "Items": items,
            }
        )
    return specs


def product_bodies(count: int, prefix: str, seed: int) -> list[dict[str, Any]]:
    """Standalone products with prices, a brand and attributes: bulk data for paging and benchmarks."""
    rng = random.Random(seed)
    bodies = []
    for n in range(1, count + 1):
        noun = rng.choice(PRODUCT_NOUNS)
        bodies.append(
            {
                "Sku": f"{prefix}{n:06d}",
                "Title": f"{rng.choice(PRODUCT_WORDS)} {noun} {n}",
                "Brand": rng.choice(["Northpeak", "Riverstone", "Bluefin", "Acme Outdoor"]),
                "Classification": noun,
                "RetailPrice": round(rng.uniform(4.99, 299.99), 2),
                "Cost": round(rng.uniform(1.0, 120.0), 2),
                "Attributes": [{"Name": "Color", "Value": rng.choice(["Red", "Blue", "Black", "Green"])}],
            }
        )
    return bodies


def seed_orders(sb: Sandbox, count: int, seed: int) -> list[dict[str, Any]]:
    """Create `count` orders whose lines use the catalogue's sellable (non-parent) products."""
    sellable = [p for p in sb.catalog.products.values() if not p["IsParent"]]
    return [sb.orders.create(spec) for spec in order_specs(count, seed, sellable)]
