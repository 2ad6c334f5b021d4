"""The ``toolsdb`` console script.

``toolsdb hook`` runs inside an agent's loop on every tool use, so it is
dispatched here before click and psycopg are imported (they cost 0.1-0.3 s
of start-up); so are the reports ``toolsdb usage daily|monthly|session``,
which are one query, and a ``toolsdb migrate`` with nothing to do
(migrate_fast.py). Every other command, and their ``--help``, goes to the
click command line in ``toolsdb.cli``.
"""

from __future__ import annotations

import sys


def main() -> None:
    hook = "hook" in sys.argv[1:]
    if hook:
        from .hook import fast_main

        code = fast_main(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    if "migrate" in sys.argv[1:] and not hook:
        # Nothing to do is the common case: found and done without click, psycopg and yoyo.
        try:
            from .migrate_fast import fast_main as migrate_main
        except KeyboardInterrupt:
            print("Aborted.", file=sys.stderr)
            sys.exit(1)
        code = migrate_main(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    if "usage" in sys.argv[1:] and not hook:
        # A report is one query: run it without click and psycopg (usage_fast.py).
        from .usage_fast import fast_main as usage_main

        code = usage_main(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    try:
        # Imported inside the try: a Ctrl-C while click and psycopg load is
        # "Interrupted.", not a traceback.
        from .cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    except SystemExit as exc:
        # Claude Code reads exit status 2 of a hook as "block this tool call":
        # a mistyped `toolsdb hook` line in settings.json must not do that.
        if hook and exc.code == 2:
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
