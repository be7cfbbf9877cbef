import sys

from charter_tui.cli import main

sys.exit(main())
