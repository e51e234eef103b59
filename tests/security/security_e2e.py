"""Shared set-up for the security suites: the e2e harness (tests/e2e/smithers_e2e.py)
plus nothing else, so an attack is written exactly as a user's run would be.

Each *_test.py here replays one class of attack from docs/security.md against the
real binary (CLI) or a real Gateway, and asserts the refusal, never a crash:

    SMITHERS_BIN=build/smithers tests/security/json_depth_test.py -v
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))

from smithers_e2e import *  # noqa: E402,F401,F403  (re-exported for the suites)
