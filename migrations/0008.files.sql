-- Uploaded files: who owns each, what it is, where it is stored, and its virus-scan verdict.
-- depends: 0007.email-change
SET lock_timeout = '5s';

CREATE TABLE files (
    id           uuid PRIMARY KEY,
    owner_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename     text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    kind         text NOT NULL CHECK (kind IN ('pdf', 'docx', 'pptx', 'xlsx', 'png', 'jpg', 'txt', 'mp3', 'm4a', 'wav')),
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    sha256       bytea NOT NULL CHECK (length(sha256) = 32),
    storage      text NOT NULL CHECK (storage IN ('local', 's3')),
    storage_key  text NOT NULL UNIQUE,
    scan_status  text NOT NULL CHECK (scan_status IN ('pending', 'clean', 'infected', 'error', 'unscanned')),
    scan_detail  text CHECK (length(scan_detail) <= 500),
    scanned_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX files_owner_idx ON files (owner_id, created_at DESC);
CREATE INDEX files_scan_pending_idx ON files (created_at) WHERE scan_status = 'pending';
