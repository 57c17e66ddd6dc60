"""The account flows that mail a link: registration and verification, password reset,
and changing the address."""
