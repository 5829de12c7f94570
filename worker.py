"""Start a Crucible worker: ``python worker.py`` (the same as ``crucible worker``)."""

from crucible.worker import main

if __name__ == "__main__":
    main()
