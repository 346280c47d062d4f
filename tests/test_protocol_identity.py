"""The job's identities (``coolcolor_protocol.identity``, SPEC §5.2 "Job identities"): what each one changes with,
and that the stored ones keep their values (pinned below: computed by the code before they were gathered here, at
commit f6d1dff — the daemon's ``canonical_hash`` and ``cache_key``, the engine's ``job_key``, the plugins' folder
digests — so a journal, an ab file or a plugin's output folder made before still matches)."""

from __future__ import annotations

from coolcolor_protocol.identity import cache_key, idempotency_key, request_hash, settings_digest
from coolcolor_protocol.messages import LIMITS

JOB = {"source": "/shots/sh010/plate.%04d.exr", "output_dir": "/shots/out", "prompt": "a red tram",
       "keyframes": [1050, 1001], "seed": 7}


def test_the_request_hash_is_the_whole_request_in_any_key_order():
    same = dict(reversed(list(JOB.items())))
    assert request_hash(same) == request_hash(JOB)
    assert request_hash(dict(JOB, output_dir="/shots/elsewhere")) != request_hash(JOB)
    assert request_hash(dict(JOB, future_field=1)) != request_hash(JOB)  # unknown fields are part of the request


def test_an_idempotency_key_follows_its_request_and_fits_the_key_limit():
    key = idempotency_key("nuke", JOB)
    assert key == "nuke-" + request_hash(JOB)[:40] and len(key) <= LIMITS["max_key_chars"]
    assert idempotency_key("nuke", dict(JOB)) == key
    assert idempotency_key("nuke", dict(JOB, output_dir="/shots/elsewhere")) != key
    assert idempotency_key("resolve", JOB) != key


def test_stored_identities_keep_the_values_they_had():
    assert request_hash(JOB) == "8110fa23cb06860e0a97cc705f75235433496af586d4284f329f84b3520deaa5"
    job_key = "dadbed35fa2771f2f7f13e6faf7ca86f2946c9a5bae91d24a964d1c300c6c8d6"
    assert cache_key(job_key, [["/shots/sh010/plate.1001.exr", 123, 456]]) == (
        "476894520a2ee5f2b737b6ed8c80f3f0bf950dc132134102ab0b3f038c1b38e6")
    folder_settings = {"source": "/x/a.mov", "prompt": "p", "seed": 0, "steps": 20, "encoding": "srgb", "first": 1,
                       "last": 5, "keyframes": [1]}
    assert settings_digest(folder_settings)[:16] == "bb3d2ac506c80f08"


def test_the_engine_job_key_is_the_settings_digest_and_keeps_its_value():
    from coolcolor.video.job import ColorizeJob, job_key

    identity = {"kind": "sequence", "name": "plate.%04d.exr", "first": 1001, "last": 1096, "width": 1920,
                "height": 1080, "channels": 3, "pixel_format": "half"}
    key = job_key(ColorizeJob.from_dict(JOB), 1001, 1096, "m" * 64, identity)
    assert key == "dadbed35fa2771f2f7f13e6faf7ca86f2946c9a5bae91d24a964d1c300c6c8d6"
    assert job_key(ColorizeJob.from_dict(dict(JOB, output_dir="/mnt/other")), 1001, 1096, "m" * 64, identity) == key
    assert job_key(ColorizeJob.from_dict(dict(JOB, seed=8)), 1001, 1096, "m" * 64, identity) != key
