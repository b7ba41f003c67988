//! The Store contract, written once and run against every backend: each
//! backend's test file implements [`Backend`] and expands
//! [`contract_tests!`] with its own runner, which sets up an isolated
//! database (a temporary file, a fresh schema), runs one test and removes it.

pub mod basics;
pub mod concurrency;
pub mod keys;
pub mod people;
pub mod registrations;

use async_trait::async_trait;
use gatehouse_oauth::client::{AuthMethod, Client, ClientMetadata, ClientOrigin, StoredSecret};
use gatehouse_oauth::store::Store;
use std::sync::Arc;

/// One test's database. `open` may be called several times: each call is a
/// separate store (its own connections) on the same data, like a replica.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn open(&self) -> Arc<dyn Store>;
}

/// Expands to one `#[tokio::test]` per contract test, each calling
/// `$runner(name, test_fn)`; the runner owns setup and cleanup.
macro_rules! contract_tests {
    ($runner:ident) => {
        contract_tests!(@each $runner,
            basics::clients_round_trip_and_every_write_records_a_change,
            basics::update_client_writes_only_over_the_revision_it_read_and_records_a_change,
            basics::idle_self_registered_clients_are_deleted_and_used_ones_kept,
            basics::reopening_the_database_keeps_everything,
            basics::a_revoked_jti_is_revoked_until_pruned_after_its_expiry_and_revoking_twice_keeps_one_row,
            basics::revocations_are_seen_by_another_connection_to_the_same_database,
            basics::an_assertion_jti_is_recorded_once_per_client_across_connections_until_pruned,
            concurrency::changes_from_concurrent_writers_are_never_skipped_by_a_polling_reader,
            concurrency::concurrent_replays_of_one_assertion_jti_admit_exactly_one,
            concurrency::concurrent_revocations_of_one_jti_make_exactly_one_entry,
            concurrency::stores_opened_together_on_a_fresh_database_all_migrate_without_error,
            basics::a_closed_store_answers_unavailable_instead_of_hanging,
            basics::a_client_cache_that_missed_pruned_changes_forgets_every_client,
            keys::a_key_is_inserted_only_while_no_key_of_its_kind_and_algorithm_activates_later,
            keys::every_key_insert_and_delete_records_a_key_change_and_failed_ones_none,
            keys::keys_are_listed_in_order_of_activation,
            keys::a_deleted_key_is_gone_for_every_connection_and_deleting_twice_is_false,
            keys::concurrent_rotations_past_one_bound_insert_exactly_one_key,
            keys::concurrent_first_starts_insert_exactly_one_key,
            people::users_round_trip_and_a_taken_id_or_name_is_a_conflict_that_changes_nothing,
            people::users_are_listed_in_order_of_name,
            people::setting_a_password_replaces_the_hash_ends_that_users_sessions_and_revokes_their_grants,
            people::withdrawing_consent_forgets_it_deletes_unredeemed_codes_and_revokes_that_clients_grants,
            people::deleting_a_user_removes_sessions_and_consents_and_revokes_families_and_their_live_tokens,
            people::a_session_is_gone_at_its_expiry_and_after_sign_out,
            people::recording_consent_again_replaces_the_scopes_per_user_client_and_resource,
            people::a_metadata_document_client_needs_no_row_for_consent_and_codes,
            people::identities_link_by_provider_and_subject_only_and_go_with_the_account,
            people::a_federated_login_is_taken_once_and_never_after_it_expired,
            people::a_code_is_redeemed_once_and_a_replay_names_its_family,
            people::an_expired_or_unknown_code_is_unknown_and_stores_nothing,
            people::concurrent_redeems_of_one_code_admit_exactly_one,
            people::a_refresh_token_is_used_first_exactly_once_and_then_says_when,
            people::concurrent_uses_of_one_refresh_token_make_exactly_one_first_use,
            people::extending_a_family_adds_one_successor_only_while_the_family_is_live,
            people::revoking_a_family_revokes_its_live_access_tokens_and_is_idempotent,
            people::pruning_grants_deletes_only_what_has_expired,
            people::a_family_keeps_only_its_recently_used_refresh_tokens,
            people::an_ended_family_is_kept_until_its_last_access_token_expires,
            people::a_rotation_racing_a_revocation_never_leaves_a_live_access_token,
            people::a_password_change_outdates_every_session_code_and_grant_made_under_the_old_one,
            people::a_code_is_issued_only_for_a_consenting_user_and_an_existing_client,
            people::deleting_a_client_revokes_its_grants_deletes_its_codes_and_forgets_its_consents,
            people::inserts_racing_a_password_change_or_a_withdrawal_leave_nothing_behind,
            registrations::a_registration_over_its_address_cap_stores_nothing_and_records_no_change,
            registrations::parallel_registrations_store_exactly_the_cap,
            registrations::never_used_self_registered_clients_are_deleted_after_the_unused_expiry,
        );
    };
    (@each $runner:ident, $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $runner(stringify!($name), contract::$module::$name).await
            }
        )*
    };
}
pub(crate) use contract_tests;

pub fn client(id: &str, origin: ClientOrigin, created_at: i64) -> Client {
    Client {
        id: id.into(),
        origin,
        metadata: ClientMetadata {
            client_name: Some("n".into()),
            grant_types: vec!["client_credentials".into()],
            response_types: vec![],
            redirect_uris: vec![],
            token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
            scopes: Some(vec!["a".into()]),
            audiences: None,
            resource_servers: None,
            jwks: None,
            jwks_uri: None,
            extra: Default::default(),
        },
        secrets: vec![StoredSecret {
            key_id: "h_1".into(),
            hash: "aGFzaA".into(),
            created_at,
            expires_at: None,
        }],
        created_at,
        registration_token: None,
        revision: 0,
    }
}
