"""The original producer's entry point: random orders to http://127.0.0.1:8080, one a second."""

import sys

from ledger.cli import main

if __name__ == "__main__":
    sys.exit(main(["produce", *sys.argv[1:]]))
