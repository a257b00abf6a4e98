"""python -m gateway runs the share-gateway command."""

import sys

from gateway.cli import main

sys.exit(main())
