"""Message templates: built once per task and options, filled in per fire."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery

from beatx import IntervalTrigger, Job
from beatx.dispatch.celery import CeleryDispatcher
from beatx.dispatch.templates import MessageTemplate, Slot, plain_key
from beatx.jobs import Fire
from tests.celery.conftest import DEFAULT_QUEUE, queued

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def make_job(job_id: str, **fields: Any) -> Job:
    return Job(id=job_id, func="proj.tasks.ping", trigger=IntervalTrigger(seconds=10), **fields)


def test_plain_keys_tell_json_values_apart_and_refuse_other_objects() -> None:
    assert plain_key(()) == plain_key([]) == "[]"
    assert plain_key({}) == "{}"
    assert len({plain_key(v) for v in ([1], [1.0], [True], ["1"], [None], [[1]], [{"a": 1}])}) == 7
    assert plain_key((1, "a", {"k": [True, None, 2.5]})) is not None
    assert plain_key((object(),)) is None
    assert plain_key({1: "int key"}) is None
    assert plain_key((datetime(2026, 1, 1),)) is None


def test_a_template_renders_each_value_in_its_place() -> None:
    text = json.dumps({"id": Slot.TASK_ID, "root": Slot.TASK_ID, "job": Slot.JOB_ID, "n": 1})
    template = MessageTemplate.from_text(text, ("q",))
    rendered = json.loads(template.render(('"t-1"', '"j \\"1\\""', '""', '""', '""', '""', '""', '""')))
    assert rendered == {"id": "t-1", "root": "t-1", "job": 'j "1"', "n": 1}


@pytest.mark.redis
def test_jobs_sharing_task_and_options_share_one_template_but_not_their_ids_or_arguments(
    broker: tuple[Celery, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = broker
    built: list[str] = []
    real = app.amqp.as_task_v2

    def counting(task_id: str, name: str, *args: Any, **kwargs: Any) -> Any:
        built.append(name)
        return real(task_id, name, *args, **kwargs)

    monkeypatch.setattr(app.amqp, "as_task_v2", counting)
    dispatcher = CeleryDispatcher(app)
    jobs = [make_job(f"job-{i}", args=(1, "x")) for i in range(50)]
    odd = make_job('odd "id" é', args=(2,), kwargs={"name": "café\u2028"})
    routed = make_job("routed", args=(3,), options={"queue": DEFAULT_QUEUE, "ignore_result": True})
    fires = [Fire(job, AT) for job in jobs] + [Fire(odd, AT + timedelta(seconds=1)), Fire(routed, AT)]
    assert dispatcher.dispatch(fires) == [None] * 52
    assert built == ["proj.tasks.ping"] * 2  # one template per task and options, not per fire

    messages = queued(client, DEFAULT_QUEUE)
    assert [m["headers"]["beatx_job_id"] for m in messages] == [f.job_id for f in fires]
    assert [m["headers"]["id"] for m in messages] == [f.task_id for f in fires]
    assert all(m["headers"]["root_id"] == m["headers"]["id"] for m in messages)
    assert all(m["properties"]["correlation_id"] == m["headers"]["id"] for m in messages)
    assert len({m["properties"]["delivery_tag"] for m in messages}) == 52
    assert messages[-2]["headers"]["beatx_scheduled_at"] == (AT + timedelta(seconds=1)).isoformat()
    assert [json.loads(base64.b64decode(m["body"]))[:2] for m in messages[-3:]] == [
        [[1, "x"], {}],
        [[2], {"name": "café\u2028"}],
        [[3], {}],
    ]
    assert messages[-2]["headers"]["kwargsrepr"] == repr({"name": "café\u2028"})
    assert messages[-1]["headers"]["argsrepr"] == "[3]"
    dispatcher.close()


@pytest.mark.redis
def test_template_options_match_send_task_and_other_options_take_the_send_task_path(
    broker: tuple[Celery, redis.Redis],
) -> None:
    app, client = broker
    options = {"time_limit": 30, "soft_time_limit": 20, "headers": {"x-h": "1"}, "ignore_result": True}
    job = make_job("limits", args=(1, 2.5, None), kwargs={"k": "vé", "n": [True, {"x": 1}]}, options=options)
    assert CeleryDispatcher(app, pipeline=False).dispatch([Fire(job, AT)]) == [None]
    assert CeleryDispatcher(app).dispatch([Fire(job, AT)]) == [None]
    by_send_task, by_template = queued(client, DEFAULT_QUEUE)
    assert by_template["headers"] == by_send_task["headers"]
    assert by_template["headers"]["timelimit"] == [30, 20]
    assert by_template["body"] == by_send_task["body"]

    client.delete(DEFAULT_QUEUE)
    later = make_job("later", options={"countdown": 60})
    assert CeleryDispatcher(app).dispatch([Fire(later, AT)]) == [None]
    (message,) = queued(client, DEFAULT_QUEUE)
    assert message["headers"]["eta"] is not None  # send_task turned the countdown into an eta


@pytest.mark.redis
def test_arguments_that_are_not_plain_json_are_encoded_per_fire_and_still_sent(
    broker: tuple[Celery, redis.Redis],
) -> None:
    app, client = broker
    dispatcher = CeleryDispatcher(app)
    moment = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    job = make_job("dated", args=(moment,))
    assert dispatcher.dispatch([Fire(job, AT), Fire(job, AT + timedelta(seconds=10))]) == [None, None]
    assert dispatcher._arguments_cache == {}
    assert CeleryDispatcher(app, pipeline=False).dispatch([Fire(job, AT)]) == [None]
    first, second, by_send_task = queued(client, DEFAULT_QUEUE)
    assert first["body"] == second["body"] == by_send_task["body"]
    assert first["headers"]["id"] != second["headers"]["id"]
    dispatcher.close()
