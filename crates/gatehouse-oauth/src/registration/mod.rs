//! Clients and their registrations (RFC 7591, RFC 7592): the one metadata
//! classifier (`classify`, reading members with `fields` and redirect URIs
//! with `redirect_uri`), storing a new client (`create`), dynamic
//! registration (`dynamic`), RFC 7592 management with registration access
//! tokens (`management`) and secret rotation with a grace period
//! (`secret_rotation`).

pub mod classify;
pub mod create;
pub mod dynamic;
mod fields;
pub mod management;
pub mod redirect_uri;
pub mod secret_rotation;
