import sys

from nwb_jedi.cli import main

sys.exit(main())
