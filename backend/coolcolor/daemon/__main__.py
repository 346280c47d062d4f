import sys

from coolcolor.daemon.cli import main

sys.exit(main())
