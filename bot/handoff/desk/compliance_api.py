"""The compliance page of the desk: ``GET /compliance`` (the page) and its data under ``/api/compliance``, for
credentials of the ``compliance`` role only (bot.handoff.credentials.ROLES; agents get 403).

=============================================  ==============================================================
``GET /compliance``                            the page (plain HTML/JS from ``static/``; no data, no auth)
``GET /api/compliance/report``                 the report as JSON, with its PNG charts as ``data:`` URIs
``GET /api/compliance/report.csv``             the report's CSV as a download (``Content-Disposition:
                                               attachment``)
=============================================  ==============================================================

Both data routes take ``?from=YYYY-MM-DD&to=YYYY-MM-DD&by=<grouping>`` with the defaults of
``python -m bot report`` (``to`` today in China time, ``from`` 27 days before, ``by`` day), build the same
report from the compliance record (bot.compliance.report over bot.compliance.store: ``$COMPLIANCE_DATABASE_URL``
or var/compliance.db, opened on first use) and give exactly what the command gives: the CSV is byte for byte
``python -m bot report --format csv`` for the same range and grouping, the JSON its ``--format json`` figures,
the charts its ``--charts`` files. The report holds counts only (no sender id, no user text, no span), so the
page shows no personal data. Every answer is audited as a desk read (``compliance_report`` or
``compliance_export`` with the range and grouping); a refusal is audited as ``refused`` (bot.handoff.desk.agent_api).

Errors: 400 for a bad ``from``/``to``/``by`` (the message names the parameter), a ``to`` before ``from`` or a
range over MAX_RANGE_DAYS; 401/403 from the credential check; 503 when the compliance record cannot be opened.
"""
from __future__ import annotations

import base64
import datetime as dt
import logging
import re
import threading
from typing import Any, Dict, Mapping, Optional, Tuple

from sanic import Blueprint, response
from sanic.request import Request

from bot.compliance.report import DEFAULT_DAYS, GROUPINGS, Report, ReportError, build, to_csv
from bot.handoff.desk.agent_api import desk_route
from bot.handoff.desk.common import blocking, error
from bot.handoff.desk.page import STATIC_DIR
from bot.knowledge import CHINA_TIME

logger = logging.getLogger(__name__)

bp = Blueprint("desk_compliance")

ROLE = "compliance"
"""The only role that may read the compliance record on the desk."""

MAX_RANGE_DAYS = 366
"""The longest range the page reports on at once, in days (a chart per day beyond a year is unreadable);
``python -m bot report`` has no such limit."""

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_RENDER = threading.Lock()


class ComplianceStore:
    """The compliance record the desk reads, opened (and migrated, bot.compliance.store.open_store) on first
    use. ``url`` None: ``$COMPLIANCE_DATABASE_URL`` or the embedded default."""

    def __init__(self, url: Optional[str] = None) -> None:
        self.url = url
        self._engine: Any = None
        self._lock = threading.Lock()

    def engine(self) -> Any:
        """The SQLAlchemy engine. Blocking; raises SQLAlchemy's error when the store cannot be reached."""
        with self._lock:
            if self._engine is None:
                from bot.compliance.store import open_store

                self._engine = open_store(self.url)
            return self._engine

    def dispose(self) -> None:
        """Close the engine's connections, if it was opened."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def report_query(args: Mapping[str, Any], today: Optional[dt.date] = None) -> Tuple[dt.date, dt.date, str]:
    """``(from, to, by)`` of a request's query ``args`` (Sanic's ``request.args``: lists of strings), with the
    defaults of ``python -m bot report``. ``today``: the default ``to`` (else today in China time).

    Raises ReportError, naming the parameter, for a value that is not ``YYYY-MM-DD`` or not a grouping, a
    ``to`` before ``from`` or more than MAX_RANGE_DAYS days.
    """

    def day(name: str) -> Optional[dt.date]:
        value = args.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or value == "":
            return None
        try:
            if not _DAY.fullmatch(value):
                raise ValueError(value)
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ReportError(f"'{name}' must be a date written YYYY-MM-DD, not {value[:20]!r}") from None

    end = day("to") or today or dt.datetime.now(CHINA_TIME).date()
    start = day("from") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
    by = args.get("by") or "day"
    if isinstance(by, list):
        by = by[0]
    if by not in GROUPINGS:
        raise ReportError(f"'by' must be one of {', '.join(GROUPINGS)}, not {str(by)[:20]!r}")
    if end < start:
        raise ReportError(f"'to' ({end}) is before 'from' ({start})")
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise ReportError(f"the range has {days} days; the page reports on at most {MAX_RANGE_DAYS} at a time")
    return start, end, by


def csv_filename(report: Report) -> str:
    """The download's file name, e.g. ``compliance-report_2026-11-03_2026-11-30_by-week.csv``."""
    return f"compliance-report_{report.start}_{report.end}_by-{report.by}.csv"


def _report(request: Request) -> Report:
    start, end, by = report_query(request.args)
    return build(request.app.ctx.compliance.engine(), start, end, by)


def _charts(report: Report) -> Dict[str, str]:
    from bot.compliance.charts import render_charts

    with _RENDER:  # matplotlib's font cache and Agg renderer are shared by the process
        charts = render_charts(report)
    return {name.removesuffix(".png"): "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            for name, png in charts.items()}


async def _read(request: Request, agent: str, action: str, with_charts: bool) -> Any:
    """Build the report (and charts) in a worker thread and audit the read; returns the report and the charts,
    or an error answer."""
    try:
        report = await blocking(_report, request)
        charts = await blocking(_charts, report) if with_charts else {}
    except ReportError as err:
        return error(str(err), 400)
    except Exception as err:  # noqa: BLE001 - a store that cannot be opened or read
        logger.error("The compliance record could not be read: %s", type(err).__name__)
        return error(f"compliance record unavailable: {type(err).__name__}", 503)
    await blocking(request.app.ctx.store.record_read, agent, action, None,
                   {"from": report.start.isoformat(), "to": report.end.isoformat(), "by": report.by,
                    "groups": len(report.groups)})
    return report, charts


@bp.get("/compliance")
async def page(request: Request) -> response.HTTPResponse:
    """The compliance page (no credentials needed to load it; the data it shows needs a compliance credential)."""
    return await response.file(STATIC_DIR / "compliance.html", mime_type="text/html; charset=utf-8")


@bp.get("/api/compliance/report")
@desk_route(ROLE)
async def report_json(request: Request, agent: str) -> response.HTTPResponse:
    """``{"report": <python -m bot report --format json>, "routes": [...], "groupings": [...], "charts":
    {"conversations": data-URI, "referrals": data-URI}}``; audited ``compliance_report``."""
    read = await _read(request, agent, "compliance_report", with_charts=True)
    if isinstance(read, response.HTTPResponse):
        return read
    report, charts = read
    return response.json({"report": report.as_dict(), "routes": report.routes, "groupings": list(GROUPINGS),
                          "max_range_days": MAX_RANGE_DAYS, "charts": charts},
                         headers={"Cache-Control": "no-store"})


@bp.get("/api/compliance/report.csv")
@desk_route(ROLE)
async def report_csv(request: Request, agent: str) -> response.HTTPResponse:
    """The report's CSV (bot.compliance.report.to_csv, UTF-8) as an attachment; audited ``compliance_export``."""
    read = await _read(request, agent, "compliance_export", with_charts=False)
    if isinstance(read, response.HTTPResponse):
        return read
    report, _ = read
    return response.raw(to_csv(report).encode("utf-8"), content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{csv_filename(report)}"',
                                 "Cache-Control": "no-store"})
