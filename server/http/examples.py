"""OpenAPI examples more than one route module shows."""

from __future__ import annotations

REFRESH_EXAMPLE = "q2Xo4l0o1o4-5pY0i3M9g0dT6a8u1bQx2n6Jc0Wk3rE"
SESSION_EXAMPLE = {
    "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImswIn0.eyJzdWIiOiI3In0.c2ln",  # nosec B105 # OpenAPI example, signs nothing
    "token_type": "Bearer",  # nosec B105 # the OAuth token type name, not a secret
    "expires_in": 900,
    "refresh_token": REFRESH_EXAMPLE,
    "refresh_expires_in": 2592000,
}
USER_EXAMPLE = {
    "id": 7,
    "email": "assessor@college.example.ac.uk",
    "full_name": "Sam Assessor",
    "role": "assessor",
    "is_active": True,
    "email_verified_at": "2026-09-01T08:05:00+00:00",
    "created_at": "2026-09-01T08:00:00+00:00",
    "updated_at": "2026-09-01T08:05:00+00:00",
}
