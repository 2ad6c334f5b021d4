"""The ``toolsdb`` console script.

``toolsdb hook`` runs inside an agent's loop on every tool use, so it is
dispatched here before click and psycopg are imported (they cost 0.1-0.3 s
of start-up); every other command, and ``toolsdb hook --help``, goes to the
click command line in ``toolsdb.cli``.
"""

from __future__ import annotations

import sys


def main() -> None:
    if "hook" in sys.argv[1:]:
        from .hook import fast_main

        code = fast_main(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
