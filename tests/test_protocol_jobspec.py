"""The one job contract (coolcolor_protocol.jobspec) and the ab file names (coolcolor_protocol.abfiles)."""

from __future__ import annotations

import json

import pytest

from coolcolor_protocol import JOB_LIMITS, LIMITS, JobSpec, ProtocolError, abfiles
from coolcolor_protocol.jobspec import MAX_FRAMES_PER_JOB, MAX_SEED, MAX_STEPS, MAX_WINDOW

BASE = {"source": "/shots/a.%04d.exr", "output_dir": "/out/a"}


def test_defaults_are_the_agreed_ones():
    spec = JobSpec.from_dict(BASE)
    assert spec.to_dict() == {
        "source": "/shots/a.%04d.exr", "output_dir": "/out/a", "prompt": "", "negative_prompt": "",
        "first": None, "last": None, "keyframes": [], "seed": 0, "steps": 20, "guidance_scale": 5.0,
        "encoding": "srgb", "ocio_config": None, "preview": False, "clip_model_dir": None, "window": 8,
        "keyframes_only": False, "resolve_sidecar": False, "rgb_plate": False, "references": [],
    }
    assert spec.extras == {}


def test_unknown_fields_are_kept_in_extras_and_survive_a_round_trip():
    sent = dict(BASE, prompt="a red tram", first=1001, last=1096, keyframes=[1050, 1001, 1050],
                future_grain={"amount": 0.2}, mask_layer="rotoA")
    spec = JobSpec.from_dict(sent)
    assert spec.extras == {"future_grain": {"amount": 0.2}, "mask_layer": "rotoA"}
    assert spec.keyframes == [1001, 1050]  # sorted, unique
    wire = json.loads(json.dumps(spec.to_dict()))
    assert wire["future_grain"] == {"amount": 0.2} and wire["mask_layer"] == "rotoA"
    assert JobSpec.from_dict(wire) == spec


def test_null_means_the_default_for_fields_that_have_one():
    spec = JobSpec.from_dict(dict(BASE, seed=None, steps=None, keyframes=None, first=None))
    assert (spec.seed, spec.steps, spec.keyframes, spec.first) == (0, 20, [], None)


@pytest.mark.parametrize(
    "change, code, words",
    [
        ({"source": None}, 400, "job.source: is required"),
        ({"output_dir": ""}, 400, "job.output_dir: must not be empty"),
        ({"source": 5}, 400, "job.source: must be a string, got int"),
        ({"prompt": "x" * (JOB_LIMITS["max_prompt_chars"] + 1)}, 413, "job.prompt: 2001 characters; limit 2000"),
        ({"negative_prompt": "a\x07b"}, 400, "job.negative_prompt: contains control characters"),
        ({"first": -1}, 400, "job.first: -1 is outside 0..10000000"),
        ({"first": 2.0}, 400, "job.first: must be an integer, got 2.0"),
        ({"last": True}, 400, "job.last: must be an integer, got True"),
        ({"first": 10, "last": 5}, 400, "job: last (5) is before first (10)"),
        ({"first": 1, "last": MAX_FRAMES_PER_JOB + 1}, 413, "limit 20000 per job (split the shot)"),
        ({"keyframes": 3}, 400, "job.keyframes: must be a list of frame numbers, got int"),
        ({"keyframes": list(range(65))}, 413, "job.keyframes: 65 keyframes; limit 64"),
        ({"first": 1, "last": 5, "keyframes": [9]}, 400, "job.keyframes: keyframe 9 is outside the frame range 1..5"),
        ({"first": 4, "keyframes": [2]}, 400, "keyframe 2 is outside the frame range 4.."),
        ({"steps": 0}, 400, "job.steps: 0 is outside 1..500"),
        ({"steps": MAX_STEPS + 1}, 400, "job.steps: 501 is outside 1..500"),
        ({"seed": MAX_SEED + 1}, 400, "job.seed: 4294967296 is outside 0..4294967295"),
        ({"window": MAX_WINDOW + 1}, 400, "job.window: 65 is outside 1..64"),
        ({"window": 0}, 400, "job.window: 0 is outside 1..64"),
        ({"guidance_scale": float("nan")}, 400, "job.guidance_scale: must be a number in 0..50"),
        ({"guidance_scale": "5"}, 400, "job.guidance_scale: must be a number in 0..50, got '5'"),
        ({"guidance_scale": 50.5}, 400, "job.guidance_scale"),
        ({"encoding": "logc3"}, 400, "job.encoding: unknown input encoding 'logc3': use one of srgb, rec709, linear"),
        ({"encoding": "ACEScg", "ocio_config": ""}, 400, "job.ocio_config: must not be empty"),
        ({"encoding": "ACEScg", "ocio_config": "ocio://default", "rgb_plate": True}, 400,
         "job.rgb_plate: is written in a built-in encoding only"),
        ({"preview": "yes"}, 400, "job.preview: must be true or false, got 'yes'"),
        ({"keyframes_only": 1}, 400, "job.keyframes_only: must be true or false"),
        ({"resolve_sidecar": "no"}, 400, "job.resolve_sidecar: must be true or false"),
        ({"clip_model_dir": 7}, 400, "job.clip_model_dir: must be a string"),
        ({"references": "a.png"}, 400, "job.references: must be a list of {frame, path} objects, got str"),
        ({"references": [{"path": "a.png"}] * 17}, 413, "job.references: 17 references; limit 16"),
        ({"references": ["a.png"]}, 400, "job.references[0]: must be an object with frame and path, got str"),
        ({"references": [{"frame": 3}]}, 400, "job.references[0]: path must be a non-empty string, got None"),
        ({"references": [{"path": "a.png", "sha": 1}]}, 400, "job.references[0]: unknown key(s) sha"),
        ({"references": [{"path": "a\x00.png"}]}, 400, "job.references[0]: path contains control characters"),
        ({"references": [{"path": "a.png", "frame": -2}]}, 400,
         "job.references[0]: frame -2 is not a frame number in 0..10000000 (null for an exemplar)"),
        ({"first": 1001, "last": 1096, "references": [{"path": "a.png", "frame": 1200}]}, 400,
         "job.references[0]: frame 1200 is outside the frame range 1001..1096"),
        ({"references": [{"path": "a.png", "frame": 5}, {"path": "b.png", "frame": 5}]}, 400,
         "job.references[1]: a second reference for frame 5 (a.png and b.png)"),
    ],
)
def test_each_bad_value_is_refused_with_its_field_and_reason(change, code, words):
    with pytest.raises(ProtocolError) as exc:
        JobSpec.from_dict(dict(BASE, **change))
    assert exc.value.code == code
    assert words in exc.value.message, exc.value.message


def test_references_round_trip_normalized():
    sent = dict(BASE, first=1001, last=1096, references=[
        {"frame": None, "path": "/stills/costume.jpg"}, {"frame": 1050, "path": "/g/sh010.1050.png"},
        {"path": "/stills/street.jpg"}, {"frame": 1001, "path": "/g/sh010.1001.png"}])
    spec = JobSpec.from_dict(sent)
    assert spec.references == [  # frame references by frame, then the exemplars in the order given
        {"frame": 1001, "path": "/g/sh010.1001.png"}, {"frame": 1050, "path": "/g/sh010.1050.png"},
        {"frame": None, "path": "/stills/costume.jpg"}, {"frame": None, "path": "/stills/street.jpg"}]
    wire = json.loads(json.dumps(spec.to_dict()))
    assert JobSpec.from_dict(wire) == spec and wire["references"] == spec.references
    assert JobSpec.from_dict(dict(BASE, references=None)).references == []
    assert JOB_LIMITS["max_references"] == 16


def test_the_caller_names_where_the_job_sits_in_its_message():
    with pytest.raises(ProtocolError, match=r"submit\.job\.steps: 0 is outside"):
        JobSpec.from_dict(dict(BASE, steps=0), where="submit.job")
    with pytest.raises(ProtocolError, match=r"submit\.job: must be an object, got list"):
        JobSpec.from_dict([1], where="submit.job")


def test_too_many_unknown_fields_is_refused():
    many = dict(BASE, **{f"x{i}": i for i in range(JOB_LIMITS["max_extra_fields"] + 1)})
    with pytest.raises(ProtocolError) as exc:
        JobSpec.from_dict(many)
    assert exc.value.code == 413 and "unknown fields; limit" in exc.value.message


def test_a_constructed_spec_is_validated_and_normalized_in_place():
    spec = JobSpec(source="s.mov", output_dir="o", keyframes=[9, 3], guidance_scale=7, first=1, last=10)
    spec.validate()
    assert spec.keyframes == [3, 9] and isinstance(spec.guidance_scale, float)
    spec.extras = {"steps": 3}
    with pytest.raises(ProtocolError, match="job.extras: holds known field"):
        spec.validate()


def test_the_hello_limits_advertise_the_job_limits():
    for name, value in JOB_LIMITS.items():
        assert LIMITS[name] == value
    assert JobSpec.LIMITS is JOB_LIMITS
    assert (JOB_LIMITS["max_steps"], JOB_LIMITS["max_seed"], JOB_LIMITS["max_window"]) == (500, 2**32 - 1, 64)


def test_ab_names_and_frame_files():
    assert abfiles.AB_CHANNELS == ("ab.a_star", "ab.b_star")
    assert all(c.startswith(abfiles.AB_LAYER + ".") for c in abfiles.AB_CHANNELS)
    assert abfiles.frame_file("/o/" + abfiles.AB_FILE_PATTERN, 7) == "/o/ab.0007.exr"
    assert abfiles.frame_file(abfiles.AB_FILE_PATTERN, 123456) == "ab.123456.exr"
    assert abfiles.frame_file("x.%d.png", 12) == "x.12.png"
    assert abfiles.hash_pattern(abfiles.AB_FILE_PATTERN) == "ab.####.exr"
    assert abfiles.hash_pattern(abfiles.RESOLVE_SIDECAR_PATTERN) == "ab_rg.####.exr"
    with pytest.raises(ValueError, match="no %d"):
        abfiles.frame_file("ab.exr", 1)
    assert abfiles.provenance_attribute("job_key") == abfiles.JOB_KEY_ATTRIBUTE == "coolcolor:job_key"
    out = abfiles.output_patterns("/o", resolve_sidecar=True)
    assert out["pattern"] == "/o/ab.%04d.exr" and out["sidecar_pattern"] == "/o/ab_rg.%04d.exr"
    assert out["rgb_pattern"] is None


def test_the_engine_uses_the_protocol_names(tmp_path):
    """The backend writes exactly what the protocol names: one definition, imported (not copied)."""
    import numpy as np

    from coolcolor.video import encoding, exr
    from coolcolor.video.job import ab_frame_path

    assert encoding.BUILTIN_ENCODINGS is abfiles.BUILTIN_ENCODINGS
    assert exr.AB_CHANNELS is abfiles.AB_CHANNELS
    path = ab_frame_path(str(tmp_path), 42)
    assert path == abfiles.frame_file(str(tmp_path / abfiles.AB_FILE_PATTERN), 42)
    exr.write_ab_exr(path, np.zeros((4, 6, 2), np.float32), {"job_key": "k", "frame": 42})
    import OpenImageIO as oiio

    spec = oiio.ImageInput.open(path).spec()
    assert tuple(spec.channelnames) == abfiles.AB_CHANNELS
    assert spec.getattribute(abfiles.JOB_KEY_ATTRIBUTE) == "k"
    assert spec.getattribute(abfiles.FRAME_ATTRIBUTE) == 42
    names = {a.name for a in spec.extra_attribs if a.name.startswith(abfiles.PROVENANCE_PREFIX)}
    assert names <= {abfiles.provenance_attribute(k) for k in abfiles.PROVENANCE_KEYS}
