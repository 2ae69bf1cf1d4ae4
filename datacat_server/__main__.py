"""``python -m datacat_server`` runs the ``datacat`` command."""

from datacat_server.cli import main

raise SystemExit(main())
