"""Row and value types of the store: plain data, no SQL, no Discord, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

JobKind = Literal["create", "remix", "edit", "extend"]
JobState = Literal["creating", "queued_local", "running", "succeeded", "failed"]
DeliveryState = Literal["pending", "claimed", "done"]
Account = Literal["held", "spent"]
# adjust_down / adjust_up: a settled job's spending brought to the cost its service reported.
LedgerReason = Literal["reserve", "refund", "settle", "adjust_down", "adjust_up"]
LimitScope = Literal["user", "guild", "bot"]
TargetKind = Literal["user", "role"]
RefusalKind = Literal["spend", "active", "cooldown"]

ACTIVE_STATES: tuple[JobState, ...] = ("creating", "queued_local", "running")
FINISHED_STATES: tuple[JobState, ...] = ("succeeded", "failed")
# The error code of a job its member cancelled (see Job.cancelled).
CANCELLED_CODE = "cancelled"


class StoreError(Exception):
    """Base of the store's own errors."""


class JobNotFound(StoreError, LookupError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job {job_id}")
        self.job_id = job_id


class InvalidTransition(StoreError):
    """A change the job's current state does not allow (a bug or a lost race, never user input)."""

    def __init__(self, job_id: int, current: str, wanted: str, detail: str = "") -> None:
        text = f"job {job_id}: cannot go from {current} to {wanted}"
        super().__init__(f"{text} ({detail})" if detail else text)
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


class NewJob(BaseModel):
    """What a request asks for, before it has an id or a state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: JobKind = "create"
    source_job_id: int | None = None
    user_id: int
    guild_id: int | None = None
    channel_id: int
    interaction_id: int | None = None
    interaction_token: str | None = None
    token_expires_at: float | None = None
    application_id: int | None = None
    prompt: str
    model: str
    seconds: str
    size: str
    has_reference: bool = False
    cost_micros: int = Field(ge=0)
    deadline_at: float | None = None
    # The channel's upload limit at request time, so delivery can fit the file without Discord.
    upload_limit: int | None = None
    # Per-model options, as sent (None: not sent; see Catalog.resolve).
    negative_prompt: str | None = None
    seed: int | None = Field(default=None, ge=0)
    audio: bool | None = None
    # The member's language (a Discord locale such as 'es-ES'); None: English.
    locale: str | None = Field(default=None, max_length=16)


class Job(BaseModel):
    """One row of `jobs`. Field order is the column order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    kind: JobKind
    source_job_id: int | None
    user_id: int
    guild_id: int | None
    channel_id: int
    interaction_id: int | None
    interaction_token: str | None
    token_expires_at: float | None
    application_id: int | None
    response_message_id: int | None
    prompt: str
    model: str
    seconds: str
    size: str
    has_reference: bool
    cost_micros: int
    upload_limit: int | None
    state: JobState
    api_video_id: str | None
    api_status: str | None
    progress: int | None
    error_code: str | None
    error_message: str | None
    create_attempted_at: float | None
    created_at: float
    updated_at: float
    completed_at: float | None
    expires_at: float | None
    deadline_at: float | None
    delivery_state: DeliveryState
    delivery_claimed_at: float | None
    delivered_at: float | None
    delivery_attempts: int
    delivered_message_id: int | None
    local_path: str | None
    # Sends of the create so far (a send that certainly reached no server is not counted).
    create_attempts: int = 0
    # A failed delivery is not tried again before this time.
    delivery_retry_at: float | None = None
    # The service accepted a send but its answer could not be used: never sent again.
    create_answered: bool = False
    # Per-model options, as sent (None: not sent).
    negative_prompt: str | None = None
    seed: int | None = None
    audio: bool | None = None
    # The spend limits the job was reserved under (JSON, see Store.reserve_job): a reported
    # cost above the reservation is charged only within them.
    spend_limits: str | None = Field(default=None, repr=False)
    # What the service reported the finished job cost (micro-dollars), when it did; the
    # delivery settles at it (`cost_micros` then shows what was charged).
    reported_cost_micros: int | None = None
    # The part of a reported cost over the member's limits, not charged.
    uncharged_micros: int = 0
    # When the video was deleted at the service, and by whom (its owner); None: not deleted.
    deleted_at: float | None = None
    deleted_by: int | None = None
    # The member who cancelled the job (its owner); None: not cancelled by a member. A cancelled
    # job is 'failed' with error code CANCELLED_CODE, refunded like any failure.
    cancelled_by: int | None = None
    # The language of the member who started the job (a Discord locale); None: English.
    locale: str | None = None
    # The bot process looking after the job, and until when (see bot/store/leases.py).
    lease_owner: str | None = None
    lease_expires_at: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def cancelled(self) -> bool:
        """Ended by its member's Cancel (not by the service or the bot)."""
        return self.cancelled_by is not None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


JOB_COLUMNS: tuple[str, ...] = tuple(Job.model_fields)


@dataclass(frozen=True, slots=True)
class SpendLimit:
    """One spending ceiling over a window: usage (held + spent) of requests made at or after
    `since` in `scope`, plus the new cost, may not exceed `max_micros`.

    `guild_id` restricts the limit to one guild: with scope 'user' it makes a per-guild user
    limit; with scope 'guild' it names the guild (default: the request's guild; a request from
    a DM then counts against the pool of all DM usage, so a guild limit is never skipped).
    """

    name: str
    scope: LimitScope
    since: float
    max_micros: int
    resets_at: float | None = None
    guild_id: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why `reserve_job` turned a request away; nothing was written.

    kind 'spend': `limit_name`, `used_micros`, `max_micros`, `cost_micros`, `resets_at`.
    kind 'active': `active_jobs` of `max_active` already running.
    kind 'cooldown': `retry_after` seconds to wait (`resets_at` is when).
    """

    kind: RefusalKind
    limit_name: str
    used_micros: int = 0
    max_micros: int = 0
    cost_micros: int = 0
    resets_at: float | None = None
    active_jobs: int = 0
    max_active: int = 0
    retry_after: float = 0.0


class LedgerEntry(BaseModel):
    """One row of the append-only `ledger`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    at: float
    # When the request was made: every entry of a job carries the job's reservation time, so a
    # time window counts a job wholly or not at all (see ledger.py).
    charged_at: float
    job_id: int
    user_id: int
    guild_id: int | None
    account: Account
    amount_micros: int
    reason: LedgerReason


class JobBalance(NamedTuple):
    held: int
    spent: int


class QuotaOverride(BaseModel):
    """A per-guild exception to a named limit for one user or role. `max_micros` None keeps the
    default ceiling (useful with `exempt`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    guild_id: int
    target_kind: TargetKind
    target_id: int
    limit_name: str
    max_micros: int | None = Field(default=None, ge=0)
    exempt: bool = False


@dataclass(frozen=True, slots=True)
class Intake:
    """A request Discord has been told about (deferred) that may not be a job yet."""

    interaction_id: int
    application_id: int
    token: str
    token_expires_at: float
    user_id: int
    received_at: float
    # The member's Discord locale ('es-ES'); None: English.
    locale: str | None = None
