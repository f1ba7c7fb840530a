"""The only code that knows HTTP: the front door, aiohttp handlers, routes and the edge."""
