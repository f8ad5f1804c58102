"""Overlap policies (issue 17): what a fire does while ``max_instances`` runs of its job are
in flight (``overlap``, ``skip`` for existing rows: their behaviour is unchanged), and
``pause_after_failures``."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_beatx", "0011_run_record_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="overlap",
            field=models.CharField(
                blank=True,
                choices=[
                    ("skip", "skip: the fire is skipped"),
                    ("buffer_one", "buffer one: the newest fire runs when the run ends"),
                    ("buffer_all", "buffer all: every fire runs, one after another"),
                    ("cancel_other", "cancel other: revoke the run in flight, then send"),
                    ("terminate_other", "terminate other: kill the run in flight, then send"),
                    ("allow_all", "allow all: runs overlap, max instances not enforced"),
                ],
                default="skip",
                help_text="What a fire does while max instances runs of the job are in flight, e.g. skip.",
                max_length=16,
                verbose_name="overlap",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="pause_after_failures",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Pause the job after this many failed runs in a row, e.g. 3. Empty: never.",
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
                verbose_name="pause after failures",
            ),
        ),
    ]
