"""Jobs for tests, a test naming only what differs: `job_request`, what a member asks for (to
insert into a store), and `job_record`, a job built in memory with every field given, for code
that only reads a job (wording, offers)."""

from __future__ import annotations

from typing import Any

from bot.store import Job, NewJob


def job_request(**fields: Any) -> NewJob:
    values: dict[str, Any] = {
        "user_id": 1,
        "channel_id": 10,
        "prompt": "a fox",
        "model": "sora-2",
        "seconds": "4",
        "size": "1280x720",
        "cost_micros": 400_000,
    }
    values.update(fields)
    return NewJob(**values)


def job_record(**fields: Any) -> Job:
    values: dict[str, Any] = {
        "id": 7,
        "kind": "create",
        "source_job_id": None,
        "user_id": 1,
        "guild_id": None,
        "channel_id": 10,
        "interaction_id": None,
        "interaction_token": None,
        "token_expires_at": None,
        "application_id": None,
        "response_message_id": None,
        "prompt": "a fox",
        "model": "sora-2",
        "seconds": "4",
        "size": "1280x720",
        "has_reference": False,
        "cost_micros": 0,
        "upload_limit": None,
        "state": "running",
        "api_video_id": "v1",
        "api_status": "in_progress",
        "progress": 10,
        "error_code": None,
        "error_message": None,
        "create_attempted_at": 1.0,
        "created_at": 0.0,
        "updated_at": 0.0,
        "completed_at": None,
        "expires_at": None,
        "deadline_at": None,
        "delivery_state": "pending",
        "delivery_claimed_at": None,
        "delivered_at": None,
        "delivery_attempts": 0,
        "delivered_message_id": None,
        "local_path": None,
        "create_attempts": 1,
    }
    values.update(fields)
    return Job.model_validate(values)
