"""`rasa` without the libraries' deprecation warnings: `python scripts/quiet_rasa.py shell --model ...`.

Why: env.sh sets PYTHONWARNINGS=ignore, but Sanic (Rasa's web server) puts `filterwarnings("once",
DeprecationWarning)` in front of it when it is imported, so a newcomer's first `rasa shell` opened with a screen of
warnings about pkg_resources, TensorFlow, matplotlib and distutils that they can do nothing about. This imports
Sanic first, puts the ignore filters back in front, and then runs Rasa's own command line unchanged.
"""

import sys
import warnings

import sanic  # noqa: F401  (imported for its side effect on the warning filters, which are then overridden)

for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning, UserWarning):
    warnings.filterwarnings("ignore", category=category)

import matplotlib  # noqa: E402, F401  (its deprecation warnings fire at import)
from rasa.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "rasa"
    main()
