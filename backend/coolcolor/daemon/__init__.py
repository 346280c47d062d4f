"""The CoolColor daemon (docs/architecture.md#protocol-and-daemon): serves the Resolve and Nuke plugins over the
signed ZeroMQ protocol of ``coolcolor_protocol`` (``protocol/SPEC.md``), journals jobs in sqlite and runs them
with the video engine. ``coolcolor serve`` starts it; ``submit``, ``status``, ``cancel`` and ``jobs`` talk to it.

Its parts, imports running one way: ``transport`` (socket, outbox, subscriptions) → ``board`` (journal,
queue, state, cancel, cache, events) → ``executor`` (``run(job, events) -> JobResult``) → the video
engine; ``server.Daemon`` wires them together."""
