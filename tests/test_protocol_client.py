"""The client's polling API and heartbeat against a hand-driven ROUTER (no daemon, no model)."""

from __future__ import annotations

import time

import pytest
import zmq

from coolcolor_protocol import Client, Session, split_identities

KEY = "ab" * 32


@pytest.fixture
def fake_daemon():
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    info = {"transport": "tcp", "ip": "127.0.0.1", "port": port, "key": KEY, "signature_scheme": "hmac-sha256",
            "session": "daemon-session-1"}
    yield router, info, Session(KEY.encode(), "daemon-session-1", require_to=True)
    router.close(0)


def serve_one(router, session, reply_type=None, key_session=None):
    assert router.poll(60_000), "the client sent nothing"
    ids, rest = split_identities(router.recv_multipart(), router=True)
    msg = session.unpack(rest)
    signer = key_session or session
    _, frames = signer.build(reply_type or f"{msg.type}_reply", {"echo": msg.type}, parent=msg.msg_id, to=msg.session)
    router.send_multipart(ids + frames)
    return msg


def test_polling_api_never_blocks_and_matches_replies_by_parent(fake_daemon):
    router, info, session = fake_daemon
    with Client(info, timeout=5) as c:
        msg_id = c.send("ping")
        assert c.poll(0) == []  # returns before any reply exists (how fast: not a test's business)
        request = serve_one(router, session)
        assert request.header["to"] == "daemon-session-1" and request.type == "ping"
        got = c.poll(60.0)  # returns at the first message
        assert [(m.type, m.parent, m.content) for m in got] == [("ping_reply", msg_id, {"echo": "ping"})]


def test_replies_signed_with_another_key_are_dropped_not_returned(fake_daemon):
    router, info, session = fake_daemon
    with Client(info, timeout=5) as c:
        c.send("ping")
        serve_one(router, session, key_session=Session(b"not the key", "daemon-session-1"))
        deadline = time.monotonic() + 60
        while c.rejected == 0 and time.monotonic() < deadline:  # until the forged reply has arrived
            assert c.poll(0.1) == []
        assert c.rejected == 1


def test_heartbeat_pings_a_silent_daemon_and_declares_it_lost(fake_daemon):
    router, info, _ = fake_daemon
    with Client(info, timeout=5) as c:
        c.server = {"limits": {"heartbeat_interval_s": 0.05}}
        deadline = time.monotonic() + 60
        while c.alive and time.monotonic() < deadline:
            c.poll(0.02)
        assert not c.alive
        assert router.poll(60_000)  # the client's pings reached the socket
        _, rest = split_identities(router.recv_multipart(), router=True)
        assert Session(KEY.encode(), "daemon-session-1").unpack(rest).type == "ping"


def test_client_validates_before_sending(fake_daemon):
    _, info, _ = fake_daemon
    from coolcolor_protocol import ProtocolError

    with Client(info, timeout=5) as c, pytest.raises(ProtocolError, match=r"submit\.job\.steps"):
        c.send("submit", {"key": "k", "job": {"source": "/a.png", "output_dir": "/o", "steps": -1}})
