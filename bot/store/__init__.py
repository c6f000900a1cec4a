"""SQLite persistence: jobs, the money ledger, settings. The only place in the bot with SQL;
it knows nothing of Discord or HTTP."""

from bot.store.records import (
    ACTIVE_STATES,
    CANCELLED_CODE,
    FINISHED_STATES,
    Account,
    DeliveryState,
    Intake,
    InvalidTransition,
    Job,
    JobBalance,
    JobKind,
    JobNotFound,
    JobState,
    LedgerEntry,
    LimitScope,
    NewJob,
    QuotaOverride,
    Refusal,
    RefusalKind,
    SpendLimit,
    StoreError,
    TargetKind,
)
from bot.store.schema import SchemaTooNew
from bot.store.store import Store

__all__ = [
    "ACTIVE_STATES",
    "CANCELLED_CODE",
    "FINISHED_STATES",
    "Account",
    "DeliveryState",
    "Intake",
    "InvalidTransition",
    "Job",
    "JobBalance",
    "JobKind",
    "JobNotFound",
    "JobState",
    "LedgerEntry",
    "LimitScope",
    "NewJob",
    "QuotaOverride",
    "Refusal",
    "RefusalKind",
    "SchemaTooNew",
    "SpendLimit",
    "Store",
    "StoreError",
    "TargetKind",
]
