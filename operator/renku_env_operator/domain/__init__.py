"""Pure domain logic: no I/O, no kopf. Every function here is a plain transformation."""
