"""Entity actions (`POST /SalesOrder/CancelSalesOrder`...), run as long-running operations.

As in the ERP, an action answers 202 with a `Location` to poll; polling answers 202 while it runs,
204 once done, and the action's error (500, HttpError body) when it failed. With
`action_delay_ms = 0` the action completes within the POST and answers 204 directly.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import Knobs
from .entities import SPECS
from .errors import ApiError
from .store import Key, Store, key_of


class ActionFailed(Exception):
    """The action ran but the ERP refused it (wrong status...); reported when polled."""


@dataclass
class Operation:
    entity: str
    action: str
    state: str = "running"  # running | done | failed
    error: str | None = None


def cancel_sales_order(store: Store, key: Key) -> None:
    order = _current(store, "SalesOrder", key)
    if order.get("Status") in ("Completed", "Canceled"):
        raise ActionFailed(f"The order {order['OrderNbr']} cannot be canceled in status '{order['Status']}'.")
    store.save("SalesOrder", {**copy.deepcopy(order), "Status": "Canceled"})


def confirm_shipment(store: Store, key: Key) -> None:
    """Confirm the shipment and complete the orders it ships (they list the shipment too)."""
    shipment = _current(store, "Shipment", key)
    if shipment.get("Status") != "Open":
        raise ActionFailed(
            f"The shipment {shipment['ShipmentNbr']} cannot be confirmed in status '{shipment['Status']}'."
        )
    store.save("Shipment", {**copy.deepcopy(shipment), "Status": "Confirmed"})
    for link in shipment.get("Orders") or ():
        order = store.get("SalesOrder", link.get("OrderType"), link.get("OrderNbr"))
        if order is None:
            continue
        updated = copy.deepcopy(order)
        updated["Status"] = "Completed"
        updated["Shipments"] = [
            s for s in updated.get("Shipments") or () if s.get("ShipmentNbr") != shipment["ShipmentNbr"]
        ]
        updated["Shipments"].append(
            {
                "ShipmentNbr": shipment["ShipmentNbr"],
                "Status": "Confirmed",
                "ShippedQty": shipment.get("ShippedQty"),
                "ShipmentDate": shipment.get("ShipmentDate"),
            }
        )
        store.save("SalesOrder", updated)


ACTIONS: dict[tuple[str, str], Callable[[Store, Key], None]] = {
    ("SalesOrder", "CancelSalesOrder"): cancel_sales_order,
    ("Shipment", "ConfirmShipment"): confirm_shipment,
}


def _current(store: Store, entity: str, key: Key) -> dict[str, Any]:
    record = store.table(entity).rows.get(key)
    if record is None:
        raise ActionFailed(f"The {entity} record no longer exists.")
    return record


class Actions:
    def __init__(self, store: Store, knobs: Callable[[], Knobs]) -> None:
        self.store = store
        self._knobs = knobs
        self.operations: dict[str, Operation] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, entity: str, action: str, record: dict[str, Any]) -> str | None:
        """Begin the action on `record`; returns the operation id to poll, or None when already done."""
        run = ACTIONS.get((entity, action))
        if run is None:
            raise ApiError(404, f"The action {action} is not defined for the entity {entity}.")
        key = key_of(SPECS[entity], record)
        delay = self._knobs().action_delay_ms / 1000
        if delay <= 0:
            self._run(run, key)  # errors surface right away
            return None
        operation_id = self.store.new_id()
        operation = self.operations[operation_id] = Operation(entity, action)
        task = asyncio.create_task(self._later(operation, run, key, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return operation_id

    def _run(self, run: Callable[[Store, Key], None], key: Key) -> None:
        try:
            with self.store.transaction():
                run(self.store, key)
        except ActionFailed as exc:
            raise ApiError(500, str(exc), "PX.Data.PXException") from exc

    async def _later(self, operation: Operation, run: Callable[[Store, Key], None], key: Key, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            with self.store.transaction():
                run(self.store, key)
            operation.state = "done"
        except ActionFailed as exc:
            operation.state, operation.error = "failed", str(exc)

    def status(self, entity: str, action: str, operation_id: str) -> Operation:
        operation = self.operations.get(operation_id)
        if operation is None or (operation.entity, operation.action) != (entity, action):
            raise ApiError(404, f"No operation {operation_id} for {entity}/{action}.")
        return operation

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.operations.clear()
