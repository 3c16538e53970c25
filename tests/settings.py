"""The test settings: the product's settings with test keys and ant settings in the environment.

Outside DEBUG a process without keys refuses to start (formicary_site/keys.py), so the keys are
set here, before the product's settings load; processes the tests spawn inherit them.
tests/security checks the refusal itself.
"""

import os

TEST_SECRET_KEY = "formicary-tests-only-secret-key-3b9f0c1e7a5d4f2b8c6e"
TEST_ENCRYPTION_KEY = "dGVzdHMtb25seS1mZXJuZXQta2V5LTMyLWJ5dGVzISE="
os.environ.setdefault("SECRET_KEY", TEST_SECRET_KEY)
os.environ.setdefault("FORMICARY_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY)
# Many tests run SHELL tasks of two organizations on one ant, in folders under pytest's
# temporary folders (mode 0700, closed to task users): tests/security turns both back on.
os.environ.setdefault("FORMICARY_ANT_SHARED_SHELL", "true")
os.environ.setdefault("FORMICARY_ANT_TASK_USERS", "false")

from formicary_site.settings import *  # noqa: E402,F403
