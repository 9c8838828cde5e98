"""reportlib: a report that is printed and also written to a file
(scripts/queue-cost, scripts/queue-capacity; the same as scripts/s3-overlap's)."""

import io
import sys
from pathlib import Path

import benchlib as bl


class Tee(io.TextIOBase):
    """stdout that is also kept, to be written to the report file at the end."""

    def __init__(self, stream):
        self.stream, self.text = stream, []

    def write(self, s):
        self.text.append(s)
        return self.stream.write(s)

    def flush(self):
        self.stream.flush()


def write_report(path, tee):
    """Writes what was printed to path; ends the copying. Returns 0."""
    out = Path(path)
    if not out.is_absolute():
        out = bl.ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(tee.text))
    sys.stdout = tee.stream
    print(f"# written to {bl.rel(out)}")
    return 0
