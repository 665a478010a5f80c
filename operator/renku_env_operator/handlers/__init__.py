"""kopf handlers: thin adapters from kopf events to services."""
