"""`python -m shop.privacy`: see shop/privacy/cli.py."""

from shop.privacy.cli import main

raise SystemExit(main())
