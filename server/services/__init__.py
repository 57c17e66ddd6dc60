"""Business rules per area; no aiohttp imports."""
