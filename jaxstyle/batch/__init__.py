"""Batch jobs: many inputs in one process (``python cli.py batch``).

- :mod:`.items`: what a job lists (a JSONL file, or a folder of contents times a list of styles),
  each item's output path and identity;
- :mod:`.index`: the results index (one JSON line per item), which makes a job resumable;
- :mod:`.buckets`: images whose working shape and settings agree, optimized together so that a
  job compiles once per bucket rather than once per item.

The command itself (flags, checks, running the buckets and the video/sound items) lives in
:mod:`jaxstyle.cli.batch`.
"""

from .buckets import Bucket, batchable, group_buckets, stylize_bucket
from .index import ResultsIndex
from .items import BatchItem, expand_folder, output_names, read_jobs

__all__ = ["BatchItem", "Bucket", "ResultsIndex", "batchable", "expand_folder", "group_buckets", "output_names",
           "read_jobs", "stylize_bucket"]
