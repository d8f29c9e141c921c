"""``make demo``: start the stack, render the bundled sample, stop everything."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from a2v_client import cli
from devstack.stack import LocalStack


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = Path.cwd()
    out = root / "out"
    out.mkdir(exist_ok=True)
    with LocalStack(root, log_dir=out) as stack:
        return cli.main(
            [
                "--server",
                stack.address,
                "generate",
                "--audio",
                str(root / "samples" / "speech.ogg"),
                "--image",
                str(root / "samples" / "portrait.jpg"),
                "--resolution",
                "512x512",
                "-o",
                str(out / "demo.mp4"),
            ]
        )


if __name__ == "__main__":
    sys.exit(main())
