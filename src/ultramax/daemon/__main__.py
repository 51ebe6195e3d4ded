"""``python -m ultramax.daemon serve``: run the daemon in the foreground (what ``daemon start`` spawns)."""

import sys

from ultramax.daemon.server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
