"""API tests: each route area over HTTP, and the request frame every request passes."""
