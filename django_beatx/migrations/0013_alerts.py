"""Alerts (issue 19): the alert rules of a job (see beatx.alerts)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_beatx", "0012_overlap_policies"),
    ]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="job",
            name="expect_every",
            field=models.FloatField(
                blank=True,
                help_text="Alert when no fire was sent for this long (a missed heartbeat), e.g. 3900. Empty: no alert.",
                null=True,
                validators=[django.core.validators.MinValueValidator(0.001)],
                verbose_name="expect a fire every (seconds)",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="max_lateness",
            field=models.FloatField(
                blank=True,
                help_text="Alert when a fire goes out (or is still unsent) this late, e.g. 60. Empty: no alert.",
                null=True,
                validators=[django.core.validators.MinValueValidator(0.001)],
                verbose_name="max lateness (seconds)",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="max_runtime",
            field=models.FloatField(
                blank=True,
                help_text="Alert when a run has not finished this long after it started, e.g. 600. Empty: no alert.",
                null=True,
                validators=[django.core.validators.MinValueValidator(0.001)],
                verbose_name="max runtime (seconds)",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="alert_after_failures",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Alert after this many failed runs in a row, e.g. 3. Empty: no alert.",
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
                verbose_name="alert after failures",
            ),
        ),
    ]
