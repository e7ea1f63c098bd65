"""Authentication, scopes and rate limits as FastAPI dependencies.

Every route except ``GET /v1/status`` declares ``Depends(require(action, bucket))``: the bearer key is
verified (401 with ``WWW-Authenticate`` otherwise), its scopes must allow the action (403), and the
key's bucket counter in the metadata store must have room (429 with ``Retry-After``). The principal
carries the key's workspace, which every service call is confined to.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Response, Security
from fastapi.security import HTTPBearer

from stratum.auth.keys import AuthError, KeyService
from stratum.auth.ratelimit import RateLimiter
from stratum.auth.scopes import allows, denied, needed_scopes
from stratum.auth.tiers import KeyLimits

from .problems import ApiProblem

BEARER = 'Bearer realm="stratum"'
# declared for OpenAPI (security scheme on every protected operation); verification is ours, below
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="API key as a bearer token: `Authorization: Bearer <key>`. Keys created by `stratum keys create` "
    "on a local or development server (`stratum serve`, any environment but production) start with `stm_test_`; "
    "keys of a production deployment start with `stm_live_`. A key is shown once at creation and belongs to one "
    "workspace; its scopes decide which routes it may call (403 names the scope needed).",
)


@dataclass(frozen=True)
class Principal:
    workspace: str
    key_id: str
    scopes: frozenset[str]
    limits: KeyLimits = KeyLimits()


def _unauthorized(detail: str, error: str = "invalid_token") -> ApiProblem:
    return ApiProblem(
        401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": f'{BEARER}, error="{error}"'}
    )


def _count_failure(request: Request) -> None:
    """One failed authentication from this client address; past the limit the answer is 429."""
    limiter: RateLimiter = request.app.state.limiter
    addr = (request.client.host if request.client else "") or "unknown"
    decision = limiter.check("addr:" + addr.replace("#", "_"), "auth_failures")
    if not decision.allowed:
        raise ApiProblem(
            429,
            "rate_limited",
            "Too many requests",
            f"too many failed authentications from this address ({decision.limit} per window); retry in "
            f"{decision.retry_after_seconds} s",
            headers={"Retry-After": str(decision.retry_after_seconds)},
        )


def authenticate(request: Request) -> Principal:
    try:
        return _authenticate(request)
    except ApiProblem as exc:
        if exc.status == 401 and request.headers.get("authorization"):  # a key was tried and failed
            _count_failure(request)
        raise


def _authenticate(request: Request) -> Principal:
    keys: KeyService = request.app.state.keys
    header = request.headers.get("authorization")
    if not header:
        raise ApiProblem(
            401,
            "unauthorized",
            "Unauthorized",
            "missing API key: send 'Authorization: Bearer <key>' (keys start with stm_live_ or stm_test_)",
            headers={"WWW-Authenticate": BEARER},
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("malformed Authorization header: expected 'Bearer <API key>'", "invalid_request")
    try:
        record = keys.verify(token.strip())
    except AuthError as exc:
        raise _unauthorized(exc.detail) from None
    keys.touch(record)
    return Principal(record.workspace, record.key_id, frozenset(record.scopes), record.limits)


def require(action: str, bucket: str | None = None):
    """Dependency: an authenticated principal allowed to do ``action``, within its rate limit."""

    def dep(request: Request, response: Response, _declared=Security(bearer_scheme)) -> Principal:
        principal = authenticate(request)
        request.state.key_id = principal.key_id
        if not allows(principal.scopes, action):
            raise ApiProblem(
                403,
                "forbidden",
                "Forbidden",
                denied(principal.scopes, action),
                required_scopes=needed_scopes(action),
            )
        if bucket is not None:
            limiter: RateLimiter = request.app.state.limiter
            decision = limiter.check(principal.key_id, bucket, per_minute=principal.limits.rate_per_min(bucket))
            headers = decision.headers()
            request.state.extra_headers = {k: v for k, v in headers.items() if k.lower() != "retry-after"}
            for k, v in request.state.extra_headers.items():
                response.headers[k] = v
            if not decision.allowed:
                raise ApiProblem(
                    429,
                    "rate_limited",
                    "Too many requests",
                    f"rate limit of {decision.limit} {bucket} requests per window reached; retry in "
                    f"{decision.retry_after_seconds} s",
                    headers=headers,
                )
        meter = getattr(request.app.state, "usage", None)
        if meter is not None:
            route = request.scope.get("route")
            meter.record(principal.workspace, principal.key_id, getattr(route, "path", request.url.path))
        return principal

    return dep
