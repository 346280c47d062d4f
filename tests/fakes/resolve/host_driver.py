"""Run "CoolColor Colorize" in ANOTHER Python (the host's: 3.9, stdlib + pyzmq + coolcolor_protocol only) against
the fake Resolve and a running daemon; print what came back as JSON. Used by tests/test_resolve_e2e.py.

    python host_driver.py '{"pattern": ..., "first": 1001, "count": 10, "left": 2, "duration": 6}'
(COOLCOLOR_CONNECTION_FILE and COOLCOLOR_RESOLVE_OUTPUT come from the environment.)
"""

import json
import sys
import time

from fakes.resolve import FakeResolve
from fakes.resolve import harness as h


def main() -> None:
    args = json.loads(sys.argv[1])
    app = FakeResolve()
    tl = app.new_timeline()
    mpi = h.sequence_clip(app, args["pattern"], args["first"], args["count"])
    item = h.place(tl, mpi, frames=args["count"], left=args["left"], duration=args["duration"])
    tl.select(item)
    result = {}

    def driver(disp):
        disp.item("Prompt").PlainText = "a red ball"
        disp.item("Steps").Value = 2
        disp.click("Colorize")
        deadline = time.monotonic() + 240
        while not all(j.finished for j in h.controller().jobs):
            if time.monotonic() > deadline:
                break
            disp.tick()
            time.sleep(0.05)
        result["jobs"] = [[j.state, j.message] for j in h.controller().jobs]
        result["status"] = h.status_text(disp)
        disp.click("Close")

    h.run_script(app, driver)
    result["comps"] = item.GetFusionCompNameList()
    result["python"] = list(sys.version_info[:2])
    result["modules"] = sorted({m.split(".")[0] for m in sys.modules} & {"numpy", "torch", "coolcolor", "cv2"})
    result["thread_violations"] = app.thread_violations
    print(json.dumps(result))


if __name__ == "__main__":
    main()
