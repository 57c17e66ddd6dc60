"""aiohttp handlers, one RouteTableDef per area."""
