"""The ops console: server-rendered pages over the ingress's own runtime and the /api/v1 functions.

Every page calls the same functions the JSON API and the CLI use (jobs, the batch screen, the DLQ
operations, the site configuration and mappings with their validation), so the console adds no second
way of doing anything; it only renders and audits. Built on `ENTITIES` and `kinds_of`, so a new entity
shows up on every page without a change here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy import select

from services.ingress import api, entities, queues
from services.ingress.console import session as sessions
from services.ingress.console.session import ConsoleSession
from services.ingress.guards import BIGINT_MAX, text_problem
from services.ops import dlq
from shared import syncrecords
from shared.db.models import ConsoleAudit, JobStatus, RequestLogRow, SyncMode, SyncRecord, SyncStatus
from shared.messaging.topology import ENTITIES, kinds_of
from shared.siteconfig import SiteConfigModel

HERE = FilePath(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
PAGES = (
    ("overview", "Overview", "/console"),
    ("jobs", "Jobs", "/console/jobs"),
    ("history", "Sync history", "/console/history/product"),
    ("dlq", "Dead letters", "/console/dlq/product"),
    ("logs", "Request logs", "/console/logs"),
    ("settings", "Settings", "/console/settings"),
    ("audit", "Audit", "/console/audit"),
)
ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
PAGE_SIZE = 100
RowId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
PageOffset = Annotated[int, Query(ge=0, le=BIGINT_MAX)]


class NeedsSignIn(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class CsrfRefused(Exception):
    pass


def storable(values: Iterable[tuple[str, Any]]) -> None:
    """422 for a value PostgreSQL cannot take (a NUL character, a lone surrogate), before any query sees it."""
    for name, value in values:
        if isinstance(value, str) and (problem := text_problem(value)):
            raise HTTPException(422, f"{name} {problem}")


async def current_session(request: Request) -> ConsoleSession:
    found = sessions.verify(request.app.state.runtime.settings, request.cookies.get(sessions.COOKIE))
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NeedsSignIn(target if request.method == "GET" else "/console")
    storable(request.query_params.multi_items())
    storable(request.path_params.items())
    return found


async def checked_session(request: Request) -> ConsoleSession:
    """A signed-in session whose form carries its CSRF token; else nothing is done (403)."""
    found = await current_session(request)
    form = await request.form()
    given = form.get("csrf_token")
    if not sessions.csrf_ok(found, given if isinstance(given, str) else None):
        raise CsrfRefused()
    storable(form.multi_items())
    return found


router = APIRouter(prefix="/console", include_in_schema=False)
Session = Depends(current_session)
Checked = Depends(checked_session)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    async def sign_in_first(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NeedsSignIn)
        return RedirectResponse("/console/login?" + urlencode({"next": exc.next_url}), status_code=303)

    async def forged(request: Request, exc: Exception) -> Response:
        return HTMLResponse("<h1>403 Forbidden</h1><p>Missing or wrong CSRF token: nothing was changed.</p>", 403)

    app.add_exception_handler(NeedsSignIn, sign_in_first)
    app.add_exception_handler(CsrfRefused, forged)


def render(request: Request, name: str, session: ConsoleSession | None, status_code: int = 200, **ctx: Any) -> Response:
    context = {
        "session": session,
        "csrf": session.csrf if session else "",
        "pages": PAGES,
        "entities": ENTITIES,
        "msg": request.query_params.get("msg"),
        "error": None,
        **ctx,
    }
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def back(url: str, msg: str) -> RedirectResponse:
    joiner = "&" if "?" in url else "?"
    return RedirectResponse(f"{url}{joiner}{urlencode({'msg': msg})}", status_code=303)


async def audit(
    request: Request, session: ConsoleSession, action: str, target: str | None, details: dict[str, Any]
) -> None:
    client = request.client.host if request.client else None
    async with request.app.state.runtime.sessionmaker() as db, db.begin():
        db.add(
            ConsoleAudit(
                actor=session.actor,
                action=action,
                target=target,
                details=json.loads(json.dumps({**details, "client": client}, default=str)),
            )
        )


def known(entity: str) -> str:
    if entity not in ENTITIES:
        raise HTTPException(404, f"unknown entity {entity!r}")
    return entity


def form_time(value: str | None, *, end_of_day: bool = False) -> datetime | None:
    """A date (`2026-01-31`) or `datetime-local` value as UTC; an empty field is None. ValueError if unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    parsed = datetime.fromisoformat(text)
    if len(text) == 10 and end_of_day:  # a date as the end of a range includes that day
        parsed = parsed.replace(hour=23, minute=59, second=59)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def error_text(exc: HTTPException) -> str:
    return exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)


# Sign-in ------------------------------------------------------------------------------------------


def safe_next(value: str | None) -> str:
    return value if value and value.startswith("/console") and not value.startswith("//") else "/console"


@router.get("/login")
async def login_page(request: Request, next: str = "/console") -> Response:
    return render(request, "login.html", None, next=safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    token, next_url = str(form.get("token") or ""), safe_next(str(form.get("next") or ""))
    settings = request.app.state.runtime.settings
    if not sessions.token_matches(settings, token):
        return render(request, "login.html", None, 401, next=next_url, error="That is not the API token.")
    cookie = sessions.issue(settings)
    opened = sessions.verify(settings, cookie)
    assert opened is not None
    await audit(request, opened, "sign-in", None, {})
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        cookie,
        max_age=sessions.MAX_AGE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )
    return response


@router.post("/logout")
async def logout(request: Request, session: ConsoleSession = Checked) -> Response:
    await audit(request, session, "sign-out", None, {})
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/console")
    return response


# Overview -----------------------------------------------------------------------------------------


def overview_rows(figures: queues.Figures) -> list[dict[str, Any]]:
    by_kind = figures.by_kind()
    rows = []
    for entity in ENTITIES:
        dlq_figure = by_kind[entity].get("dlq")
        dead = (dlq_figure["ready"] + (dlq_figure["unacked"] or 0)) if dlq_figure else None
        for kind in kinds_of(entity):
            q = by_kind[entity].get(kind)
            problems = []
            if q is None:
                problems.append("not declared")
            elif q["consumers"] == 0:
                problems.append("no consumer")
            if dead:
                problems.append("DLQ not empty")
            rows.append({"entity": entity, "kind": kind, "q": q, "dead": dead, "problems": problems})
    return rows


@router.get("")
async def overview(request: Request, session: ConsoleSession = Session) -> Response:
    runtime = request.app.state.runtime
    error, rows, management = None, [], None
    try:
        delays = (await runtime.config.get()).retry_delays
        figures = await queues.figures_of(request.app.state, runtime.settings, runtime.topology, delays)
        rows, management = overview_rows(figures), figures.management
    except queues.QueuesUnavailable as exc:
        error = str(exc)
    return render(
        request,
        "overview.html",
        session,
        page="overview",
        rows=rows,
        management=management,
        error=error,
        now=datetime.now(UTC),
    )


# Jobs ---------------------------------------------------------------------------------------------


def progress(job: dict[str, Any]) -> int:
    counts = job["counts"]
    if job["status"] == JobStatus.SUCCEEDED:
        return 100
    found = counts["found"] or 0
    done = sum(counts[k] for k in ("processed", "failed", "filtered", "skipped", "deleted"))
    return min(100, round(100 * done / found)) if found else 0


@router.get("/jobs")
async def jobs_page(
    request: Request, entity: str = "", status: str = "", session: ConsoleSession = Session
) -> Response:
    return await jobs_view(request, session, entity, status)


async def jobs_view(
    request: Request, session: ConsoleSession, entity: str = "", status: str = "", error: str | None = None
) -> Response:
    listed = await api.list_jobs(request, entity=entity or None, status_=status or None, limit=50, offset=0)
    for job in listed["items"]:
        job["progress"] = progress(job)
    return render(
        request,
        "jobs.html",
        session,
        status_code=422 if error else 200,
        page="jobs",
        jobs=listed,
        entity=entity,
        status=status,
        statuses=[s.value for s in JobStatus],
        modes=[m.value for m in SyncMode if m != SyncMode.SELECTED],
        error=error,
    )


@router.post("/jobs")
async def start_job(request: Request, session: ConsoleSession = Checked) -> Response:
    form = await request.form()
    entity = str(form.get("entity") or "")
    try:
        body = api.SyncRequest.model_validate(
            {
                "mode": form.get("mode"),
                "from": form_time(str(form.get("from") or "")),
                "to": form_time(str(form.get("to") or "")),
                "force": form.get("force") == "on",
            }
        )
        started = await api.start_sync(entity, body, request)
    except (ValueError, ValidationError) as exc:
        return await jobs_view(request, session, error=f"Not started: {exc}")
    except HTTPException as exc:
        return await jobs_view(request, session, error=f"Not started: {error_text(exc)}")
    await audit(request, session, "start-sync", entity, {**body.model_dump(by_alias=True), "job_id": started["job_id"]})
    return back(f"/console/jobs/{started['job_id']}", f"Job {started['job_id']} started")


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: RowId, session: ConsoleSession = Session) -> Response:
    job = await api.get_job(job_id, request)
    job["progress"] = progress(job)
    async with request.app.state.runtime.sessionmaker() as db:
        failed = (
            await db.scalars(
                select(SyncRecord)
                .where(SyncRecord.job_id == job_id, SyncRecord.status.in_((SyncStatus.FAILED, SyncStatus.ABORTED)))
                .order_by(SyncRecord.acumatica_key)
                .limit(500)
            )
        ).all()
    return render(request, "job.html", session, page="jobs", job=job, failed=failed, ended=job["status"] in ENDED)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: RowId, session: ConsoleSession = Checked) -> Response:
    try:
        await api.cancel_job(job_id, request)
    except HTTPException as exc:
        return back(f"/console/jobs/{job_id}", f"Not cancelled: {error_text(exc)}")
    await audit(request, session, "cancel-job", str(job_id), {})
    return back(f"/console/jobs/{job_id}", f"Job {job_id} cancelled")


# Sync history (the batch screen) ------------------------------------------------------------------


@router.get("/history")
async def history_default(session: ConsoleSession = Session) -> Response:
    return RedirectResponse("/console/history/product", status_code=303)


@router.get("/history/{entity}")
async def history(
    request: Request,
    entity: str,
    status: str = "",
    key: str = "",
    since: str = "",
    until: str = "",
    source: str = "connector",
    offset: PageOffset = 0,
    session: ConsoleSession = Session,
) -> Response:
    known(entity)
    live = source == "acumatica" and entity in entities.LIVE_ENTITIES and not key.strip()
    error = None
    listed: dict[str, Any] = {"items": [], "total": 0, "has_more": False, "offset": 0}
    try:
        window_from, window_to = form_time(since), form_time(until, end_of_day=True)
        if key.strip():  # one key: the batch screen's own lookup of records by key
            async with request.app.state.runtime.sessionmaker() as db:
                found = await syncrecords.load(db, entity, [key.strip()])
            listed = {"items": [entities.record_view(r) for r in found.values()], "total": len(found), "offset": 0}
        elif live:  # the batch screen's live list: Acumatica's candidates with their sync state
            answer = await entities.list_records(
                entity, request, "acumatica", status or None, window_from, window_to, PAGE_SIZE, max(0, offset)
            )
            if isinstance(answer, Response):
                error = json.loads(bytes(answer.body)).get("error")
            else:
                listed = answer
        else:
            listed = await entities.connector_records(
                request, entity, status or None, window_from, window_to, PAGE_SIZE, max(0, offset)
            )
    except ValueError as exc:
        error = f"Unreadable date: {exc}"
    except HTTPException as exc:
        error = error_text(exc)
    query = {"status": status, "key": key, "since": since, "until": until, "source": "acumatica" if live else ""}
    return render(
        request,
        "history.html",
        session,
        page="history",
        entity=entity,
        listed=listed,
        statuses=[s.value for s in SyncStatus],
        query=query,
        query_string=urlencode(query),
        page_size=PAGE_SIZE,
        live=live,
        has_live=entity in entities.LIVE_ENTITIES,
        error=error,
    )


@router.post("/history/{entity}/process")
async def process_selected(request: Request, entity: str, session: ConsoleSession = Checked) -> Response:
    known(entity)
    form = await request.form()
    keys = [str(k) for k in form.getlist("key")]
    here = f"/console/history/{entity}?{form.get('query_string') or ''}"
    try:
        body = entities.ProcessSelected(keys=keys, force=form.get("force") == "on")
        started = await entities.process_selected(entity, body, request)
    except ValidationError:
        return back(here, "Select at least one record first")
    except HTTPException as exc:
        return back(here, f"Not processed: {error_text(exc)}")
    await audit(request, session, "process", entity, {"keys": keys, "job_id": started["job_id"]})
    return back(here, f"Job {started['job_id']} processes {started['keys']} record(s)")


@router.post("/history/{entity}/process-all")
async def process_all(request: Request, entity: str, session: ConsoleSession = Checked) -> Response:
    known(entity)
    form = await request.form()
    here = f"/console/history/{entity}?{form.get('query_string') or ''}"
    try:
        body = entities.ProcessAll.model_validate(
            {
                "source": "acumatica" if form.get("source") == "acumatica" else "connector",
                "status": form.get("status") or None,
                "from": form_time(str(form.get("since") or "")),
                "to": form_time(str(form.get("until") or ""), end_of_day=True),
            }
        )
        started = await entities.process_all(entity, body, request)
    except (ValueError, ValidationError) as exc:
        return back(here, f"Not processed: {exc}")
    except HTTPException as exc:
        return back(here, f"Not processed: {error_text(exc)}")
    await audit(
        request, session, "process-all", entity, {**body.model_dump(by_alias=True), "job_id": started["job_id"]}
    )
    if "keys" not in started:  # the live list's Process All is a date-range (or full) job
        return back(here, f"Job {started['job_id']} ({started['mode']}) processes everything the filter lists")
    return back(here, f"Job {started['job_id']} processes {started['keys']} record(s)")


# Dead letters -------------------------------------------------------------------------------------


@router.get("/dlq")
async def dlq_default(session: ConsoleSession = Session) -> Response:
    return RedirectResponse("/console/dlq/product", status_code=303)


@router.get("/dlq/{entity}")
async def dead_letters(request: Request, entity: str, session: ConsoleSession = Session) -> Response:
    runtime = request.app.state.runtime
    items: list[dlq.DeadLetterInfo] = []
    total, error = 0, None
    try:
        items, total = await dlq.list_dead_letters(
            runtime.settings.amqp_url_plain, runtime.topology, known(entity), limit=200
        )
    except dlq.DlqError as exc:
        error = str(exc)
    return render(request, "dlq.html", session, page="dlq", entity=entity, items=items, total=total, error=error)


def _selection(form: Any) -> list[str] | None:
    """The ids chosen on the form, or None for all of them."""
    return None if form.get("all") == "1" else [str(i) for i in form.getlist("id")]


def _summary(verb: str, result: dlq.Result) -> str:
    parts = [f"{verb} {len(result.done)}"]
    if result.kept:
        parts.append(f"kept {len(result.kept)} ({'; '.join(reason for _, reason in result.kept[:3])})")
    if result.missing:
        parts.append(f"not found {len(result.missing)}")
    return ", ".join(parts)


@router.post("/dlq/{entity}/replay")
async def replay(request: Request, entity: str, session: ConsoleSession = Checked) -> Response:
    runtime = request.app.state.runtime
    ids = _selection(await request.form())
    if ids == []:
        return back(f"/console/dlq/{entity}", "Select at least one dead letter first")
    try:
        result = await dlq.replay(runtime.settings.amqp_url_plain, runtime.topology, known(entity), ids=ids)
    except dlq.DlqError as exc:
        return back(f"/console/dlq/{entity}", f"Not replayed: {exc}")
    await audit(
        request,
        session,
        "dlq-replay",
        entity,
        {
            "ids": ids or "all",
            "replayed": [i.message_id for i in result.done],
            "kept": [[i.message_id, reason] for i, reason in result.kept],
        },
    )
    return back(f"/console/dlq/{entity}", _summary("Replayed", result))


@router.post("/dlq/{entity}/discard")
async def discard(request: Request, entity: str, session: ConsoleSession = Checked) -> Response:
    runtime = request.app.state.runtime
    form = await request.form()
    ids = _selection(form)
    if ids == []:
        return back(f"/console/dlq/{entity}", "Select at least one dead letter first")
    if form.get("confirm") != "yes":  # the question first; the answer posts the same selection again
        return render(request, "dlq_confirm.html", session, page="dlq", entity=known(entity), ids=ids)
    try:
        result = await dlq.discard(runtime.settings.amqp_url_plain, runtime.topology, known(entity), ids=ids)
    except dlq.DlqError as exc:
        return back(f"/console/dlq/{entity}", f"Not discarded: {exc}")
    await audit(
        request, session, "dlq-discard", entity, {"ids": ids or "all", "discarded": [i.message_id for i in result.done]}
    )
    return back(f"/console/dlq/{entity}", _summary("Discarded", result))


# Request logs -------------------------------------------------------------------------------------


def _int(value: str, name: str) -> int | None:
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number") from None


@router.get("/logs")
async def logs(
    request: Request,
    system: str = "",
    entity: str = "",
    record_key: str = "",
    job_id: str = "",
    status: str = "",
    errors_only: str = "",
    since: str = "",
    until: str = "",
    offset: PageOffset = 0,
    session: ConsoleSession = Session,
) -> Response:
    query = {
        "system": system,
        "entity": entity,
        "record_key": record_key,
        "job_id": job_id,
        "status": status,
        "errors_only": errors_only,
        "since": since,
        "until": until,
    }
    error, items = None, []
    try:
        listed = await api.request_logs(
            request,
            system=system or None,
            entity=entity or None,
            record_key=record_key.strip() or None,
            job_id=_int(job_id, "job"),
            status_=_int(status, "status"),
            errors_only=errors_only == "on",
            since=form_time(since),
            until=form_time(until),
            limit=PAGE_SIZE,
            offset=max(0, offset),
        )
        items = listed["items"]
    except ValueError as exc:
        error = str(exc)
    return render(
        request,
        "logs.html",
        session,
        page="logs",
        items=items,
        query=query,
        query_string=urlencode(query),
        offset=offset,
        page_size=PAGE_SIZE,
        error=error,
    )


@router.get("/logs/{log_id}")
async def log_detail(request: Request, log_id: RowId, session: ConsoleSession = Session) -> Response:
    async with request.app.state.runtime.sessionmaker() as db:
        row = await db.get(RequestLogRow, log_id)
    if row is None:
        raise HTTPException(404, f"request log {log_id} not found")
    return render(request, "log.html", session, page="logs", row=row)


# Settings -----------------------------------------------------------------------------------------

SCALAR_FIELDS = tuple(
    name for name, f in SiteConfigModel.model_fields.items() if f.annotation is int or f.annotation == "int"
)
JSON_FIELDS = tuple(name for name in SiteConfigModel.model_fields if name not in SCALAR_FIELDS)


async def settings_page(
    request: Request,
    session: ConsoleSession,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    mapping_texts: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    config = (await api.get_config(request)).model_dump(mode="json")
    shown = {
        name: str(config[name]) if name in SCALAR_FIELDS else json.dumps(config[name], indent=2) for name in config
    }
    mappings = {}
    for kind in entities.MAPPING_KINDS:
        listed = await entities.list_mappings(kind, request)
        mappings[kind] = json.dumps(listed["items"], indent=2)
    return render(
        request,
        "settings.html",
        session,
        status_code=422 if errors or error else 200,
        page="settings",
        scalar_fields=SCALAR_FIELDS,
        json_fields=JSON_FIELDS,
        values={**shown, **(values or {})},
        mappings={**mappings, **(mapping_texts or {})},
        errors=errors or {},
        error=error,
    )


@router.get("/settings")
async def settings_view(request: Request, session: ConsoleSession = Session) -> Response:
    return await settings_page(request, session)


@router.post("/settings/config")
async def save_config(request: Request, session: ConsoleSession = Checked) -> Response:
    form = await request.form()
    values = {name: str(form[name]) for name in SiteConfigModel.model_fields if name in form}
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, raw in values.items():
        if name in SCALAR_FIELDS:
            try:
                changes[name] = int(raw.strip())
            except ValueError:
                changes[name] = raw  # the API's validation names the problem
        else:
            try:
                changes[name] = json.loads(raw)
            except ValueError as exc:
                errors[name] = f"not valid JSON: {exc}"
    if not errors:
        try:
            await api.put_config(changes, request)
        except RequestValidationError as exc:
            for e in exc.errors():
                loc = [str(p) for p in e["loc"][1:]]
                field = loc[0] if loc else "config"
                errors[field] = (f"{'.'.join(loc[1:])}: " if len(loc) > 1 else "") + e["msg"]
        except HTTPException as exc:
            return await settings_page(request, session, values=values, error=error_text(exc))
    if errors:
        return await settings_page(request, session, values=values, errors=errors)
    await audit(request, session, "config-update", "site_config", {"changes": changes})
    return back("/console/settings", "Site configuration saved")


@router.post("/settings/mappings/{kind}")
async def save_mappings(request: Request, kind: str, session: ConsoleSession = Checked) -> Response:
    form = await request.form()
    text = str(form.get("items") or "")
    field = f"mapping_{kind}"
    try:
        entities.check_kind(kind)
        raw = json.loads(text)
        if not isinstance(raw, list):
            raise ValueError("expected a JSON list of {source, target, options}")
        items = [entities.MappingIn.model_validate(item) for item in raw]
        await entities.replace_mappings(kind, items, request)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return await settings_page(request, session, mapping_texts={kind: text}, errors={field: problems})
    except (ValueError, HTTPException) as exc:
        problem = error_text(exc) if isinstance(exc, HTTPException) else str(exc)
        return await settings_page(request, session, mapping_texts={kind: text}, errors={field: problem})
    await audit(request, session, "mappings-update", kind, {"items": [i.model_dump() for i in items]})
    return back("/console/settings", f"Mappings {kind} saved ({len(items)})")


# Audit --------------------------------------------------------------------------------------------


@router.get("/audit")
async def audit_page(request: Request, session: ConsoleSession = Session) -> Response:
    async with request.app.state.runtime.sessionmaker() as db:
        rows = (await db.scalars(select(ConsoleAudit).order_by(ConsoleAudit.id.desc()).limit(200))).all()
    return render(request, "audit.html", session, page="audit", rows=rows)
