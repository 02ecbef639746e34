"""The HTTP layer: routes, reads, auth, limits, errors and the API description."""
