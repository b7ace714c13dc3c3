-- 0005_revoked_since: recent revocations of an issuer, which every replica
-- polls to invalidate its OCSP and CRL caches.

CREATE INDEX certs_revoked_at ON certs (issuer, revoked_at) WHERE status = 'revoked';
