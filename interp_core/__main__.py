import sys

from interp_core.cli import main

sys.exit(main())
