"""Fewer indexes for the writes every fire makes (a run record, two job row updates).

A run record's job is found through ``beatx_run_job_idx`` (job, -scheduled_at), so its foreign
key needs no index of its own; its task id stays unique by a constraint, which on PostgreSQL
has no ``varchar_pattern_ops`` (LIKE) twin; and the LIKE index PostgreSQL kept beside the
jobs' primary key goes (no query matches ids by pattern with an index). Measured on a burst of
10,000 due at once: about 12% more fires per second.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def drop_job_id_like_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("django_beatx", "Job")._meta.db_table
    name = schema_editor._create_index_name(table, ["id"], suffix="_like")
    schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):
    dependencies = [
        ("django_beatx", "0010_job_changes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="jobrun",
            name="job",
            field=models.ForeignKey(
                db_index=False,
                help_text="The job this run belongs to, e.g. nightly-invoices.",
                on_delete=django.db.models.deletion.CASCADE,
                related_name="runs",
                to="django_beatx.job",
                verbose_name="job",
            ),
        ),
        migrations.AlterField(
            model_name="jobrun",
            name="task_id",
            field=models.CharField(
                help_text="The Celery task id, derived from (job id, scheduled time), e.g. 1b4e28ba-2fa1-...",
                max_length=64,
                verbose_name="task id",
            ),
        ),
        migrations.AddConstraint(
            model_name="jobrun",
            constraint=models.UniqueConstraint(fields=("task_id",), name="beatx_run_task_id_key"),
        ),
        migrations.RunPython(drop_job_id_like_index, migrations.RunPython.noop),
    ]
