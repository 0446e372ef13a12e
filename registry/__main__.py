"""`python -m registry`: run the schema registry in the foreground (see `registry/__init__.py`)."""

import sys

from registry.process import main

if __name__ == "__main__":
    sys.exit(main())
