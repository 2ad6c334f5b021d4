"""yoyo post-apply hook: re-apply views/ after every successful migrate.

Views, and anything else in views/, are written with `create or replace`,
so they are not versioned as migrations; toolsdb runs this hook inside the
same transaction as the migrations (see runner/toolsdb/migrate.py).
"""

from yoyo import step

from toolsdb.migrate import apply_views

steps = [step(apply_views)]
