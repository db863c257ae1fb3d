"""The dashboard: /admin/stats (the organisation, admins) and /inbox/stats (a worker's own
conversations), each with a CSV (…/stats.csv). GET only: reading counts changes nothing (no audit
entry: nothing personal is read). Date range: ?start=YYYY-MM-DD&end=YYYY-MM-DD (Paris days, end
included; default the last 30 days); a bad range is a 400 with a French reason."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta, timezone

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

import stats.counters  # noqa: F401  (registers the dashboard's own counters)
import stats.rooms  # noqa: F401  (and the figures other rooms keep: sources, campaigns, referrals)
from admin.access import current_admin
from handoff.auth import csrf_token, current_worker
from kernel.database import utcnow
from handoff.hours import PARIS
from handoff.models import Worker
from stats.registry import REGISTRY, Query

router = APIRouter()
MAX_DAYS = 731


def date_range(start: str | None, end: str | None) -> tuple[date, date]:
    today = utcnow().astimezone(PARIS).date()
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=29)
    except (ValueError, TypeError):
        raise HTTPException(400, "Dates : le format attendu est AAAA-MM-JJ.") from None
    if first > last:
        raise HTTPException(400, "Dates : le début doit être avant la fin.")
    if (last - first).days > MAX_DAYS:
        raise HTTPException(400, f"Dates : {MAX_DAYS} jours au plus.")
    return first, last


def instants(first: date, last: date) -> tuple[datetime, datetime]:
    """Paris days -> [start, end) in UTC."""
    return (datetime.combine(first, time(0), PARIS).astimezone(timezone.utc),
            datetime.combine(last + timedelta(days=1), time(0), PARIS).astimezone(timezone.utc))


async def compute(request: Request, organisation_id: int, worker_id: int | None, first: date, last: date) -> list:
    start, end = instants(first, last)
    results = []
    async with request.app.state.rt.sessionmaker() as session:
        q = Query(session, organisation_id, worker_id, start, end)
        for counter in REGISTRY.ordered():
            results.append((counter, await counter.compute(q)))
    return results


def csv_response(results: list, first: date, last: date, name: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(["indicateur", "ligne", "valeur", "du", "au"])
    for counter, rows in results:
        for row in rows:
            writer.writerow([counter.title, row.label, row.shown, first.isoformat(), last.isoformat()])
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}-{first.isoformat()}-{last.isoformat()}.csv"',
        "Cache-Control": "no-store"})


def render(request: Request, template: str, worker: Worker, results: list, first: date, last: date, csv_url: str):
    context = {"worker": worker, "admin": worker, "csrf": csrf_token(request), "results": results,
               "first": first, "last": last, "csv_url": csv_url}
    return request.app.state.templates.TemplateResponse(request, template, context,
                                                        headers={"Cache-Control": "no-store"})


@router.get("/admin/stats", response_class=HTMLResponse)
async def admin_stats(request: Request, start: str | None = None, end: str | None = None,
                      admin: Worker = Depends(current_admin)):
    first, last = date_range(start, end)
    results = await compute(request, admin.organisation_id, None, first, last)
    return render(request, "stats/admin.html", admin, results, first, last,
                  f"/admin/stats.csv?start={first.isoformat()}&end={last.isoformat()}")


@router.get("/admin/stats.csv")
async def admin_stats_csv(request: Request, start: str | None = None, end: str | None = None,
                          admin: Worker = Depends(current_admin)):
    first, last = date_range(start, end)
    return csv_response(await compute(request, admin.organisation_id, None, first, last), first, last, "statistiques")


@router.get("/inbox/stats", response_class=HTMLResponse)
async def my_stats(request: Request, start: str | None = None, end: str | None = None,
                   worker: Worker = Depends(current_worker)):
    first, last = date_range(start, end)
    results = await compute(request, worker.organisation_id, worker.id, first, last)
    return render(request, "stats/inbox.html", worker, results, first, last,
                  f"/inbox/stats.csv?start={first.isoformat()}&end={last.isoformat()}")


@router.get("/inbox/stats.csv")
async def my_stats_csv(request: Request, start: str | None = None, end: str | None = None,
                       worker: Worker = Depends(current_worker)):
    first, last = date_range(start, end)
    return csv_response(await compute(request, worker.organisation_id, worker.id, first, last), first, last,
                        "mes-statistiques")
