-- Client certificates issued by the service's CA, and the facility policy
-- that decides whether staff need one to log in. Keep in lock step with the
-- other backend's tree.
ALTER TABLE facilities ADD COLUMN require_client_cert BOOLEAN NOT NULL DEFAULT TRUE;
-- Set when the operator revokes the facility's whole CA.
ALTER TABLE facilities ADD COLUMN ca_revoked_at BIGINT;

CREATE TABLE client_certificates (
    id BIGSERIAL PRIMARY KEY,
    serial TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id),
    facility_id BIGINT NOT NULL REFERENCES facilities(id),
    thumbprint TEXT NOT NULL UNIQUE,
    device_label TEXT NOT NULL,
    method TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    status TEXT NOT NULL,
    issued_by BIGINT REFERENCES users(id),
    issued_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoke_reason TEXT
);
CREATE INDEX client_certificates_user ON client_certificates(user_id);
CREATE INDEX client_certificates_facility ON client_certificates(facility_id, status);

-- The last CRL number used per issuer (`issuing`, `facility-<id>`): CRL
-- numbers only ever grow (RFC 5280 5.2.3).
CREATE TABLE crl_numbers (
    issuer TEXT PRIMARY KEY,
    last_number BIGINT NOT NULL
);
