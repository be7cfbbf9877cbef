"""A tiny real "server setting" for the generic command actuator: a JSON file changed by commands.

    python knob.py STATE get PARAM        prints the value (exit 1 if the state file is gone: "down")
    python knob.py STATE set PARAM VALUE  writes it (exit 3 if the state says "refuse_set"; first sleeps
                                          "slow_set" seconds if the state names them: a server that is slow to change)
Every call is appended to STATE.calls, so tests can count what ran, with which argv.
"""

import json
import sys
import time
from pathlib import Path

state = Path(sys.argv[1])
with open(str(state) + ".calls", "a") as log:
    log.write(json.dumps(sys.argv[2:]) + "\n")
if not state.exists():
    print("knob: server down", file=sys.stderr)
    sys.exit(1)
data = json.loads(state.read_text())
if sys.argv[2] == "get":
    print(data.get(sys.argv[3], ""))
elif sys.argv[2] == "set":
    if data.get("refuse_set"):
        print("knob: refusing to set", file=sys.stderr)
        sys.exit(3)
    time.sleep(float(data.get("slow_set", 0)))
    data[sys.argv[3]] = sys.argv[4]
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(state)  # atomic: a concurrent reader never sees half a file
