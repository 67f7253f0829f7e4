//! End-to-end tests: the real `kizuna` binary on real SQLite (always) and
//! PostgreSQL (when `KIZUNA_TEST_DATABASE_URL` is set), spoken to over real TLS
//! and WebSocket by `kizuna-client`.

mod audit;
mod auth;
mod bad_input;
mod ca_cli;
mod certificates;
mod cluster;
mod communities;
mod durability;
mod facility_admin;
mod invitations;
mod policy;
mod support;
mod timelines;
