"""The steps of a cycle, one module each: inputs (validate, resolve), create (and claim, adopt),
observe (and what a build's state means), update (and replace), delete. `reconcile()` calls them."""
