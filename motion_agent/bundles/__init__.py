"""How experts reach a robot: signed bundles, the on-robot store, the inbox, the CLI."""
