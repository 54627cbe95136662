import sys

from rbg_flows.cli.main import main

sys.exit(main())
