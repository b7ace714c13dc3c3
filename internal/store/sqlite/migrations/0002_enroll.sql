-- 0002_enroll: the registration authority's records: devices, enrollment
-- requests and bootstrap tokens. Times are unix microseconds as in 0001;
-- a NULL time means "not yet" (not decided, not used, not revoked).

CREATE TABLE devices (
	id              TEXT    NOT NULL PRIMARY KEY,
	name            TEXT    NOT NULL,
	hardware_serial TEXT    NOT NULL DEFAULT '',
	os              TEXT    NOT NULL DEFAULT '',
	os_version      TEXT    NOT NULL DEFAULT '',
	owner_email     TEXT    NOT NULL DEFAULT '',
	agent_version   TEXT    NOT NULL DEFAULT '',
	state           TEXT    NOT NULL CHECK (state IN ('pending', 'active', 'revoked')),
	first_seen      INTEGER NOT NULL,
	last_seen       INTEGER NOT NULL,
	version         INTEGER NOT NULL CHECK (version >= 1)
) STRICT;

CREATE INDEX devices_name ON devices (name);
CREATE INDEX devices_hardware_serial ON devices (hardware_serial) WHERE hardware_serial <> '';

CREATE TABLE enrollment_requests (
	id          TEXT    NOT NULL PRIMARY KEY,
	device_id   TEXT    NOT NULL REFERENCES devices (id),
	csr_der     BLOB    NOT NULL,
	csr_sha256  BLOB    NOT NULL CHECK (length(csr_sha256) = 32),
	facts       TEXT    NOT NULL, -- JSON of store.Facts
	state       TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'issued')),
	decided_by  TEXT    NOT NULL DEFAULT '',
	decided_at  INTEGER,
	comment     TEXT    NOT NULL DEFAULT '',
	evidence    TEXT,             -- JSON, written by the RA
	cert_serial TEXT    NOT NULL DEFAULT '',
	source_addr TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	version     INTEGER NOT NULL CHECK (version >= 1)
) STRICT;

-- Re-submitting a CSR finds its first request: this index is what makes the
-- dedupe hold between processes, whatever they checked beforehand.
CREATE UNIQUE INDEX enrollment_requests_csr ON enrollment_requests (csr_sha256);

-- The approval queue: pending requests, oldest first.
CREATE INDEX enrollment_requests_state ON enrollment_requests (state, created_at);
CREATE INDEX enrollment_requests_device ON enrollment_requests (device_id);

CREATE TABLE bootstrap_tokens (
	id              TEXT    NOT NULL PRIMARY KEY,
	hash            BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32), -- SHA-256 of the secret, never the secret
	created_by      TEXT    NOT NULL,
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL,
	bound_name      TEXT    NOT NULL DEFAULT '',
	bound_owner     TEXT    NOT NULL DEFAULT '',
	used_at         INTEGER,
	used_by_request TEXT    REFERENCES enrollment_requests (id),
	revoked_at      INTEGER
) STRICT;
