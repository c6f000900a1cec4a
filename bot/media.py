"""Where members' files live under `DATA_DIR`: the one place that knows the folder layout.

- `videos/job-<id><suffix>`: a job's downloaded video, its thumbnail, a copy fitted to the
  channel's upload limit and the marker that it cannot fit, each kept between delivery attempts
  and removed once delivered (or at the service's retention time);
- `references/job-<id><ext>`: the fitted reference image of a job, kept until the job is sent, so
  a queued job or one interrupted by a restart can still be sent with it;
- `videos/<name>.mp4`: what `python -m videobot generate` writes when no `--out` is given.

Paths are built from the bot's own job ids (or a name made safe first) only: nothing from the API
or Discord picks where a file is written. Every file is owner-only (bot/files.py).
"""

from __future__ import annotations

from pathlib import Path

from bot.api.models import ReferenceImage
from bot.files import open_private

# A job's files under videos/: the download, the copy fitted to an upload limit, the thumbnail,
# and the marker that re-encoding could not fit it (so a later attempt does not try again).
VIDEO = ".mp4"
FITTED = "-fit.mp4"
THUMBNAIL = ".webp"
UNFIT = ".unfit"
JOB_SUFFIXES = (VIDEO, FITTED, THUMBNAIL, UNFIT)
# The reference image types a job may carry, by the extension they are kept under.
REFERENCE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


class MediaFiles:
    """A job's files under one data folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def video(self, job_id: int, suffix: str = VIDEO) -> Path:
        return self.root / "videos" / f"job-{job_id}{suffix}"

    def named_video(self, name: str) -> Path:
        """Where a video fetched outside a job is written; `name` must already be safe."""
        return self.root / "videos" / f"{name}.mp4"

    def reference(self, job_id: int, ext: str) -> Path:
        return self.root / "references" / f"job-{job_id}{ext}"

    def save_reference(self, job_id: int, reference: ReferenceImage) -> None:
        path = self.reference(job_id, REFERENCE_TYPES[reference.content_type])
        with open_private(path) as handle:
            handle.write(reference.data)

    @staticmethod
    def reference_image(content_type: str, data: bytes) -> ReferenceImage | None:
        """A reference image kept elsewhere (the database), by its type; None for a type the
        bot never keeps."""
        ext = REFERENCE_TYPES.get(content_type)
        if ext is None:
            return None
        return ReferenceImage.model_validate(
            {"data": data, "filename": f"reference{ext}", "content_type": content_type}
        )

    def load_reference(self, job_id: int) -> ReferenceImage | None:
        for content_type, ext in REFERENCE_TYPES.items():
            path = self.reference(job_id, ext)
            if path.exists():
                return ReferenceImage(
                    data=path.read_bytes(),
                    filename=f"reference{ext}",
                    content_type=content_type,
                )
        return None

    def remove_job(self, job_id: int) -> None:
        """Every file a job keeps (its video and what was made from it, its reference)."""
        for suffix in JOB_SUFFIXES:
            self.video(job_id, suffix).unlink(missing_ok=True)
        for ext in REFERENCE_TYPES.values():
            self.reference(job_id, ext).unlink(missing_ok=True)
