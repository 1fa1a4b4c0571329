"""`python -m jaxnet_lite` runs the `jaxnet-lite` command."""

import sys

from jaxnet_lite.apps.cli import main

sys.exit(main())
