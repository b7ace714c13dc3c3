-- 0001_init: certificate records and per-issuer CRL counters.
--
-- Times are INTEGER unix microseconds (UTC), truncated on write, so they
-- compare as numbers and span years 1 to 9999 with room to spare; see
-- encodeTime in sqlite.go.

CREATE TABLE certs (
	serial     TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	profile    TEXT    NOT NULL,
	issuer     TEXT    NOT NULL,
	subject    TEXT    NOT NULL,
	not_before INTEGER NOT NULL,
	not_after  INTEGER NOT NULL,
	der        BLOB    NOT NULL,
	status     TEXT    NOT NULL CHECK (status IN ('active', 'superseded', 'revoked')),
	revoked_at INTEGER,
	reason     INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	version    INTEGER NOT NULL CHECK (version >= 1)
) STRICT;

-- At most one active certificate per name. This is what makes ErrNameTaken
-- hold across processes: whatever the application checks beforehand, two
-- concurrent issuances cannot both commit.
CREATE UNIQUE INDEX certs_active_name ON certs (name) WHERE status = 'active';

-- List by name across all statuses (history of one name).
CREATE INDEX certs_name ON certs (name);

-- List by issuer and status.
CREATE INDEX certs_issuer_status ON certs (issuer, status, not_after);

-- Revoked(issuer, floor), which builds CRLs: a partial index over revoked
-- rows only, covering every column the query reads, so a 100,000-entry CRL
-- is one range scan of this index and never touches the (DER-heavy) table
-- rows; that is 2.5x faster than going through certs_issuer_status.
CREATE INDEX certs_revoked ON certs (issuer, not_after, serial, revoked_at, reason)
	WHERE status = 'revoked';

-- Expiry sweeps: List with NotAfterBefore / NotAfterAfter.
CREATE INDEX certs_not_after ON certs (not_after);

CREATE TABLE crl_numbers (
	issuer TEXT    NOT NULL PRIMARY KEY,
	number INTEGER NOT NULL CHECK (number >= 0)
) STRICT;
