"""`python -m portal_sync_dev.bench`: see run.py."""

import sys

from portal_sync_dev.bench.run import main

sys.exit(main())
