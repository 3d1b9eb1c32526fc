"""The results index of a batch job: ``OUT_DIR/index.jsonl``, one JSON object per item (its
inputs, output, status ``ok`` or ``failed``, the one-line reason, metrics).

Records are appended (and flushed to disk) as items finish, so a killed job loses nothing it
finished; the last record of an item wins. At the end of a job the file is rewritten atomically
with one line per item, in the job's order. A rerun skips the items whose last record is ``ok``
with the same key (same inputs, output and flags) and whose output still exists.

With several processes each appends to its own part, ``index.pN.jsonl``; at the end process 0
merges the parts into ``index.jsonl`` (:meth:`ResultsIndex.compact`). A job killed before that
leaves the parts, and its rerun reads them too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..io.files import json_default, write_failure, write_text_atomic


class ResultsIndex:
    def __init__(self, out_dir: str | os.PathLike, process_id: int = 0, num_processes: int = 1):
        self.path = Path(out_dir) / "index.jsonl"
        # where this process appends
        self.part = self.path if num_processes == 1 else Path(out_dir) / f"index.p{process_id}.jsonl"
        self.records = self.load()  # item -> its last record (kept up to date by append)

    def _files(self) -> list[Path]:
        return [self.path, *sorted(self.path.parent.glob("index.p*.jsonl"))]

    def load(self) -> dict[int, dict]:
        """The last record of every item, from the index and any parts (an unreadable line, e.g.
        cut by a kill, is ignored)."""
        records: dict[int, dict] = {}
        for path in self._files():
            if path.is_file():
                self._read(path, records)
        return records

    @staticmethod
    def _read(path: Path, records: dict[int, dict]) -> None:
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("item"), int):
                records[record["item"]] = record

    def finished(self, item: int, key: str) -> dict | None:
        """The item's ``ok`` record when the same item already finished and its output still exists."""
        record = self.records.get(item)
        if record and record.get("status") == "ok" and record.get("key") == key and \
                record.get("output") and Path(record["output"]).is_file():
            return record
        return None

    def append(self, record: dict) -> None:
        line = json.dumps(record, default=json_default) + "\n"
        try:
            with open(self.part, "a") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise write_failure(self.part, exc) from None
        self.records[record["item"]] = record

    def compact(self, order: list[int] | None = None) -> list[dict]:
        """Rewrite the index with one line per item of ``order`` (default: every item recorded,
        in item order), the processes' parts merged in (and removed). Process 0 calls it at the
        start of a job too, so parts left by a killed job never outlive the records after them."""
        self.records = self.load()
        order = sorted(self.records) if order is None else order
        kept = [self.records[i] for i in order if i in self.records]
        write_text_atomic(self.path, "".join(json.dumps(r, default=json_default) + "\n" for r in kept))
        for part in self._files()[1:]:
            part.unlink(missing_ok=True)
        return kept
