"""Scheduled game days: plan file → runs → reports/ and history.

plan (YAML → frozen dataclasses), schedule (pure: next run given a
clock), lock (file lock + Lease), runner (`chaos run` per experiment),
schedule_loop (the foreground scheduler), export / cronjob (systemd units
and Kubernetes CronJobs), cli (`chaosk3s gameday ...`).
"""
