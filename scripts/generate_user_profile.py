"""The original profile generator's entry point: writes jsons/user_profile.json."""

import sys

from ledger.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate-profiles", *sys.argv[1:]]))
