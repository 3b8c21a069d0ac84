"""The old home of the generated stories, kept so that ``python -m train.leaderboard.stories
--out stories.txt --size 5MB`` in a user's scripts still works: it runs the command line of
``tritonlm.corpora.stories``, where the stories live now."""

import sys

from tritonlm.corpora.stories import main

if __name__ == "__main__":
    sys.exit(main())
