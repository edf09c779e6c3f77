"""Branded error pages for the staff pages (400, 403, 404, 405, 410, 500), with the staff navigation,
so a person who lands on one knows where they are and how to go on."""
from __future__ import annotations

import logging

from flask import abort, current_app, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

from ivr.dashboard.core import bp
from ivr.db import get_session

log = logging.getLogger(__name__)

PAGES = {
    400: ("Form expired", "This form was sent without its safety token (it may have expired or been sent twice). "
                          "Go back, reload the page and try again."),
    403: ("Not allowed", "Your role does not include this page. If you need it, ask an admin."),
    404: ("Page not found", "There is no staff page here. It may have been removed, or the link is mistyped."),
    405: ("Not allowed", "This page cannot be used that way. Go back and use the page's own buttons."),
    410: ("Link expired", "This link has expired. Go back and open it again from its page."),
    500: ("Something went wrong", "The page could not be shown because of a problem on our side."),
}


def error_page(exc: HTTPException) -> tuple[str, int, dict[str, str]]:
    """Render the branded page for an HTTP error raised by a staff page."""
    code = exc.code or 500
    title, message = PAGES.get(code, PAGES[500])
    # A 405 says which methods the page takes (Allow), as Flask's own answer does.
    headers = {"Allow": ", ".join(exc.valid_methods)} if isinstance(exc, MethodNotAllowed) and exc.valid_methods else {}
    return render_template("staff/error.html", code=code, title=title, message=message), code, headers


def server_error(exc: InternalServerError) -> tuple[str, int, dict[str, str]]:
    """A staff page failed: roll back what it started, log it, and say so with the staff page's look."""
    get_session().rollback()
    log.error("staff page failed: %s", exc.original_exception or exc)
    return error_page(exc)


for _code in (400, 403, 404, 405, 410):
    bp.register_error_handler(_code, error_page)
bp.register_error_handler(InternalServerError, server_error)


@bp.before_app_request
def _unrouted_staff_request() -> tuple[str, int, dict[str, str]] | None:
    """A request under /staff that matched no route with its method (a POST to an unknown path, a GET
    of a POST-only page) belongs to no blueprint, so the handlers above never see its 405: answer
    it here, before the app's own handler (which answers the webhook paths with TwiML) gets it."""
    exc = request.routing_exception
    staff = request.path == "/staff" or request.path.startswith("/staff/")
    if staff and isinstance(exc, MethodNotAllowed):
        return error_page(exc)
    return None


CATCH_ALL_METHODS = {"GET", "HEAD", "OPTIONS"}


@bp.route("/<path:unknown>", methods=["GET", "HEAD"])
def unknown_page(unknown: str) -> tuple[str, int]:
    """Any path under /staff that is no page: the branded 404 (no route would get Flask's bare one);
    a page that only takes other methods (a GET of a POST-only action): the branded 405."""
    others = set(current_app.url_map.bind_to_environ(request.environ).allowed_methods()) - CATCH_ALL_METHODS
    if others:
        raise MethodNotAllowed(valid_methods=sorted(others))
    abort(404)
