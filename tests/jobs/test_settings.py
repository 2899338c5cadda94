"""The job settings: Mattermost's names and defaults, hubbub's own timing, and values refused at
load with the key path in the message."""

from __future__ import annotations

import pytest

from hubbub.config import ConfigError, load_config
from hubbub.jobs.model import CLEANUP, DATA_RETENTION
from hubbub.jobs.scheduler import DAY_MS, schedules_from


@pytest.mark.parametrize(
    ("environ", "key_path", "words"),
    [
        (
            {"MM_JOBSETTINGS_HEARTBEATSECONDS": "5", "MM_JOBSETTINGS_STALESECONDS": "10"},
            "JobSettings",
            "must exceed two heartbeats",
        ),
        ({"MM_JOBSETTINGS_MAXATTEMPTS": "0"}, "JobSettings.MaxAttempts", ""),
        ({"MM_JOBSETTINGS_CLEANUPJOBSTHRESHOLDDAYS": "-2"}, "CleanupJobsThresholdDays", ""),
        (
            {"MM_DATARETENTIONSETTINGS_DELETIONJOBSTARTTIME": "25:00"},
            "DataRetentionSettings.DeletionJobStartTime",
            "between 00:00 and 23:59",
        ),
        (
            {"MM_DATARETENTIONSETTINGS_DELETIONJOBSTARTTIME": "2am"},
            "DataRetentionSettings.DeletionJobStartTime",
            "HH:MM",
        ),
        (
            {"MM_DATARETENTIONSETTINGS_MESSAGERETENTIONDAYS": "0"},
            "DataRetentionSettings",
            "MessageRetentionDays or MessageRetentionHours must be at least 1",
        ),
        ({"MM_DATARETENTIONSETTINGS_BATCHSIZE": "0"}, "DataRetentionSettings.BatchSize", ""),
    ],
)
def test_bad_values_name_their_key_path(environ: dict[str, str], key_path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ=environ)
    assert key_path in str(info.value) and words in str(info.value)


def test_hours_win_over_days_and_zero_days_is_fine_with_hours() -> None:
    s = load_config(
        None,
        environ={
            "MM_DATARETENTIONSETTINGS_MESSAGERETENTIONDAYS": "0",
            "MM_DATARETENTIONSETTINGS_MESSAGERETENTIONHOURS": "6",
            "MM_DATARETENTIONSETTINGS_FILERETENTIONDAYS": "2",
        },
    ).settings.DataRetentionSettings
    assert s.message_retention_hours == 6 and s.file_retention_hours == 48


def test_schedules_follow_the_settings() -> None:
    default = schedules_from(load_config(None, environ={}).settings)
    assert [(s.job_type, s.period_ms) for s in default] == [(CLEANUP, 3_600_000)]
    enabled = schedules_from(
        load_config(
            None,
            environ={
                "MM_DATARETENTIONSETTINGS_ENABLEFILEDELETION": "true",
                "MM_DATARETENTIONSETTINGS_DELETIONJOBSTARTTIME": "03:30",
                "MM_JOBSETTINGS_CLEANUPINTERVALSECONDS": "2",
            },
        ).settings
    )
    assert [(s.job_type, s.period_ms, s.offset_ms) for s in enabled] == [
        (CLEANUP, 2000, 0),
        (DATA_RETENTION, DAY_MS, (3 * 60 + 30) * 60_000),
    ]
