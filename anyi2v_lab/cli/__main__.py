"""``python -m anyi2v_lab.cli`` (and ``torchrun ... -m anyi2v_lab.cli batch``): the same as ``anyi2v-lab``."""
import sys

from . import main

sys.exit(main())
