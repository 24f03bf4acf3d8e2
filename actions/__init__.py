"""The action server: one module per skill. Actions stay thin; the rules live in the `shop` package."""
