"""The python-shell side of the round-trip benchmark: python-shell's JSON mode as it is
normally used. One JSON request per line on stdin, one JSON reply per line on stdout:
{id, cmd, args} -> {id, ok: true, result} with result None for "noop" and args for "echo".
Standard library only. Exits on stdin EOF.
"""

import json
import sys


def main():
    out = sys.stdout
    for line in sys.stdin:
        msg = json.loads(line)
        result = msg.get("args") if msg.get("cmd") == "echo" else None
        out.write(json.dumps({"id": msg.get("id"), "ok": True, "result": result}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
