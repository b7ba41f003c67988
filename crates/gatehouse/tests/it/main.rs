//! The binary's integration tests, one test executable: each module starts
//! the real `gatehouse` (and, where a test needs them, its real peers) and
//! speaks HTTP to it. What the modules share is the `gatehouse-testkit`
//! crate. Run one module with `cargo test -p gatehouse --test it <module>::`.

mod browser;
mod client_address;
mod client_auth_failures;
mod client_credentials;
mod client_documents;
mod client_management;
mod config_cli;
mod conformance;
mod connection_bounds;
mod credential_races;
mod federation;
mod first_hour;
mod floods;
mod gateway;
mod gateway_attacks;
mod gateway_config;
mod gateway_sessions;
mod jwks_uri;
mod keys;
mod mcp_sdk;
mod mcp_sdk_oauth;
mod people;
mod pkjwt_interop;
mod private_key_jwt;
mod registration;
mod replicas;
mod request_deadlines;
mod revocation;
mod shutdown;
mod stalled_issuer;
mod store_outage;
mod walkthrough;
