"""The job server: scheduled and requested jobs, each run exactly once across the cluster.

Data flow:

- A job is a row in `jobs` (`store.JobStore`), created `pending` by an administrator
  (`POST /api/v4/jobs`, `hubbub jobs run`) through `service.JobsService`, or by the scheduler.
- The scheduler (`scheduler.Scheduler`) runs on the node holding the `job_scheduler` lease,
  which only nodes with `JobSettings.RunScheduler` contend for. Each round it creates the jobs
  whose schedule slot has come, in a transaction fenced by that lease's token, with a unique
  (type, schedule, slot) key: a deposed scheduler can neither act nor double a slot.
- Every node with `JobSettings.RunJobs` runs a `worker.JobServer`: it claims a pending job with
  one atomic update (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite has a single writer), runs its
  handler, beats the row's `last_activity_at`, and watches the row for `cancel_requested`.
  Writes from the worker name its claim (the attempt number), so a worker whose job moved on
  changes nothing.
- The cluster leader's reaper (`scheduler.Reaper`) returns a job whose heartbeat stopped (its
  node died) to `pending`, or fails it after `JobSettings.MaxAttempts` claims; the next worker
  continues from the checkpoint the handler kept in `data`, where the type supports one.
- Handlers: `retention.DataRetention`, `cleanup.Cleanup`, `export.BulkExport`,
  `importer.BulkImport` (the bulk format itself is `bulk.py`).
"""
