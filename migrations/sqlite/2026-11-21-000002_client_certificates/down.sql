DROP TABLE crl_numbers;
DROP TABLE client_certificates;
ALTER TABLE facilities DROP COLUMN ca_revoked_at;
ALTER TABLE facilities DROP COLUMN require_client_cert;
