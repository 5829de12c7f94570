"""Logging in, refreshing, and turning a bearer credential into a :class:`Principal`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from crucible.core.auth.access import AccessTokenPolicy, decode_access_token, issue_access_token
from crucible.core.auth.keys import KeyRing, key_ring
from crucible.core.auth.models import ALL_SCOPES, AuthError, Principal
from crucible.core.auth.passwords import verify_password_async
from crucible.core.auth.store import API_TOKEN_PREFIX, AccountStore
from crucible.core.auth.throttle import LoginThrottle
from crucible.core.config import Settings

BAD_CREDENTIALS = "incorrect email or password"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuthService:
    """What the auth routes and the ``current_principal`` dependency call.

    ``clock`` (for tests) is "now" for refresh and API-token expiry, key grace periods and
    the times tokens are issued at; PyJWT checks an access token's ``exp`` against the wall clock.
    """

    def __init__(
        self,
        accounts: AccountStore,
        ring: KeyRing,
        policy: AccessTokenPolicy,
        *,
        refresh_ttl: timedelta,
        throttle: LoginThrottle | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.accounts = accounts
        self.ring = ring
        self.policy = policy
        self.refresh_ttl = refresh_ttl
        self.throttle = throttle
        self.clock = clock

    @classmethod
    def from_settings(
        cls, accounts: AccountStore, settings: Settings, *, ring: KeyRing | None = None
    ) -> AuthService:
        """The service the settings describe (raises ``AuthConfigError`` like :func:`key_ring`)."""
        return cls(
            accounts,
            ring or key_ring(settings),
            AccessTokenPolicy.from_settings(settings),
            refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_s),
            throttle=LoginThrottle(
                per_email=settings.login_failures_per_email,
                per_address=settings.login_failures_per_address,
                window_s=settings.login_failure_window_s,
            ),
        )

    async def warm_up(self) -> None:
        """Hash the dummy password now, so the first unknown-user login is not slower than the rest."""
        await verify_password_async("warm-up", None)

    def access_token(self, user_id: str) -> str:
        return issue_access_token(self.ring, self.policy, user_id=user_id, now=self.clock())

    async def login(self, email: str, password: str, *, address: str = "") -> TokenPair:
        """A token pair for valid credentials, from the client at ``address``.

        Raises:
            AuthError: unknown email, wrong password or disabled user, all with the same
                message and (the unknown email checks a dummy hash) about the same time.
            TooManyRequestsError: too many failed logins for the email or from the address;
                the password was not checked.
        """
        if self.throttle is not None:
            self.throttle.check(email, address)
        user = await self.accounts.user_by_email(email)
        ok = await verify_password_async(password, user.password_hash if user else None)
        if user is None or not ok or user.disabled:
            if self.throttle is not None:
                self.throttle.failed(email, address)
            raise AuthError(BAD_CREDENTIALS)
        if self.throttle is not None:
            self.throttle.succeeded(email)
        now = self.clock()
        await self.accounts.record_login(user.user_id, now=now)
        refresh = await self.accounts.issue_refresh_token(user.user_id, ttl=self.refresh_ttl, now=now)
        return TokenPair(self.access_token(user.user_id), refresh, int(self.policy.ttl.total_seconds()))

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token (see :meth:`AccountStore.rotate_refresh_token`)."""
        outcome = await self.accounts.rotate_refresh_token(
            refresh_token, ttl=self.refresh_ttl, now=self.clock()
        )
        user = await self.accounts.user_by_id(outcome.user_id)
        if user is None or user.disabled:
            raise AuthError("invalid or expired refresh token")
        return TokenPair(self.access_token(user.user_id), outcome.token, int(self.policy.ttl.total_seconds()))

    async def authenticate(self, credential: str) -> Principal:
        """The principal behind an access JWT or an API token.

        Raises:
            AuthError: the credential is not valid, or its user is gone or disabled.
        """
        now = self.clock()
        via: Literal["access", "api_token"]
        if credential.startswith(API_TOKEN_PREFIX):
            token = await self.accounts.use_api_token(credential, now=now)
            user_id, scopes = token.user_id, frozenset(token.scopes)
            via, token_id, token_team = "api_token", token.token_id, token.team_id
        else:
            claims = decode_access_token(credential, self.ring, self.policy, now=now)
            user_id, scopes = claims.user_id, frozenset(ALL_SCOPES)
            via, token_id, token_team = "access", None, None
        user = await self.accounts.user_by_id(user_id)
        if user is None or user.disabled:
            raise AuthError("invalid or expired token")
        return Principal(
            user_id=user.user_id,
            email=user.email,
            memberships=await self.accounts.memberships(user.user_id),
            scopes=scopes,
            via=via,
            token_id=token_id,
            token_team_id=token_team,
        )
