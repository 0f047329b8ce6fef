"""Training jobs on disk: what `forgeml train --resume JOB` needs to continue an interrupted run.

Every `train` call opens a job folder, FORGEML_HOME/jobs/<id>/, holding job.json (the resolved spec,
the data source and the data's fingerprint). Each neural fit inside the run (a family on a CV fold,
on the holdout split, or the final refit) gets a checkpoint slot, <id>/<family>-<fit>/, where the
trainer writes its checkpoint on SIGINT/SIGTERM (and every `neural.checkpoint_every` epochs).

A finished run deletes its folder; an interrupted one keeps it. Resuming runs the same spec on the
same data with the same seed: the split, the classical candidates and every neural fit that had
finished come out exactly as before, and the fit that was interrupted continues from its slot's
checkpoint, so the resumed run ends with the model an uninterrupted run would have produced.
A fit that completes removes its slot, so a slot only ever holds an unfinished fit.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from forgeml.errors import DataError, ForgeError

JOB_FILE = "job.json"
_ID = re.compile(r"^[0-9a-f]{12}$")
_JOB: ContextVar[Job | None] = ContextVar("forgeml_job", default=None)
_SLOT: ContextVar[Path | None] = ContextVar("forgeml_checkpoint_slot", default=None)


def jobs_root() -> Path:
    from forgeml.registry.store import forgeml_home

    return forgeml_home() / "jobs"


@dataclass
class Job:
    """One training run's folder; `record` is job.json's content."""

    id: str
    path: Path
    record: dict[str, Any]

    @classmethod
    def create(cls, spec: dict[str, Any], source: str | None, fingerprint: dict[str, Any]) -> Job:
        job_id = uuid.uuid4().hex[:12]
        path = jobs_root() / job_id
        path.mkdir(parents=True)
        record = {"id": job_id, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "spec": spec, "source": source, "data": fingerprint}
        (path / JOB_FILE).write_text(json.dumps(record, indent=2, default=str))
        return cls(job_id, path, record)

    @classmethod
    def open(cls, job_id: str) -> Job:
        """The interrupted job `job_id`; DataError naming what to do when there is none."""
        job_id = job_id.strip()
        path = jobs_root() / job_id
        if not _ID.match(job_id) or not (path / JOB_FILE).is_file():
            known = sorted(p.name for p in jobs_root().glob("*") if (p / JOB_FILE).is_file()) if jobs_root().is_dir() else []
            hint = f" (interrupted jobs: {', '.join(known[:5])})" if known else " (there are no interrupted jobs)"
            raise DataError(f"no interrupted training job '{job_id}' under {jobs_root()}{hint}; "
                            "use the id printed when the run was interrupted")
        try:
            record = json.loads((path / JOB_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ForgeError(f"job '{job_id}' cannot be read ({exc}); delete {path} and train again") from None
        return cls(job_id, path, record)

    def check_data(self, fingerprint: dict[str, Any]) -> None:
        """The data a resume reads must be the data the job started on (same rows, same hash)."""
        before = self.record.get("data", {})
        if before.get("hash") != fingerprint.get("hash"):
            raise DataError(f"the data differs from the data job '{self.id}' started on ({before.get('rows')} rows, "
                            f"hash {str(before.get('hash'))[:12]}; now {fingerprint.get('rows')} rows, hash "
                            f"{str(fingerprint.get('hash'))[:12]}); resume with the original data or train anew")

    def finish(self) -> None:
        """The run ended (registered, or failed for a reason a resume would not fix): drop its folder."""
        shutil.rmtree(self.path, ignore_errors=True)

    @contextmanager
    def active(self) -> Iterator[Job]:
        token = _JOB.set(self)
        try:
            yield self
        finally:
            _JOB.reset(token)


@contextmanager
def checkpoint_slot(name: str) -> Iterator[Path | None]:
    """Inside a job, make <job>/<name>/ the checkpoint folder of the fit run in this block (else None)."""
    job = _JOB.get()
    if job is None:
        yield None
        return
    token = _SLOT.set(job.path / re.sub(r"[^A-Za-z0-9_.-]", "_", name))
    try:
        yield _SLOT.get()
    finally:
        _SLOT.reset(token)


def current_slot() -> Path | None:
    """The checkpoint folder the current fit should use (None outside a job)."""
    return _SLOT.get()
